//! The routing table, built once from all manifests whenever the catalog changes.
//!
//! HTTP hooks go into `matchit` routers, which make the most specific route win: a static
//! segment beats a `{param}`. Routes ending in a greedy `{rest+}` live in a second router that
//! is consulted only when no other route takes the request, so a greedy route never shadows a
//! more specific one.

use std::collections::BTreeMap;

use crate::manifest::{Hook, Manifest, OneOrMany, route_pattern};

/// One HTTP route of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// The path as the manifest wrote it (`/hello/{name}`).
    pub path: String,
    /// Upper-case methods; `None` means any method.
    pub methods: Option<Vec<String>>,
    pub function: String,
    pub entrypoint: String,
    /// Parameter names in path order.
    params: Vec<String>,
}

impl HttpRoute {
    fn accepts(&self, method: &str) -> bool {
        match &self.methods {
            None => true,
            Some(methods) => methods.iter().any(|m| m == method),
        }
    }
}

/// Two routes that cannot both be served; the one kept is named first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConflict {
    pub kept: String,
    pub dropped: String,
    pub reason: String,
}

/// The outcome of routing an HTTP request.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpMatch<'a> {
    Found {
        route: &'a HttpRoute,
        params: BTreeMap<String, String>,
    },
    /// The path matches but no route takes the method.
    MethodNotAllowed {
        allowed: Vec<String>,
    },
    NotFound,
}

/// All routes of all functions.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
    /// Routes sharing one path shape, indexed by the router's values.
    shapes: Vec<Vec<HttpRoute>>,
}

/// `/a/{x}/{rest+}` -> (`/a/{p0}/{*p1}`, [x, rest]): routes differing only in parameter
/// names share a shape.
fn shape(path: &str) -> Option<(String, Vec<String>)> {
    let pattern = route_pattern(path).ok()?;
    let mut names = Vec::new();
    let segments: Vec<String> = pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(inner) => {
                    let (star, name) = match inner.strip_prefix('*') {
                        Some(name) => ("*", name),
                        None => ("", inner),
                    };
                    names.push(name.to_string());
                    format!("{{{star}p{}}}", names.len() - 1)
                }
                None => segment.to_string(),
            },
        )
        .collect();
    Some((segments.join("/"), names))
}

fn methods(method: &Option<OneOrMany>) -> Option<Vec<String>> {
    let methods: Vec<String> = method
        .as_ref()
        .map(OneOrMany::to_vec)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    if methods.is_empty() || methods.iter().any(|m| m == "ANY") {
        None
    } else {
        Some(methods)
    }
}

impl RouteTable {
    /// Builds the table from manifests, in function-name order so the result is deterministic.
    /// Routes that collide with an earlier one are dropped and reported.
    pub fn build<'a>(
        manifests: impl IntoIterator<Item = &'a Manifest>,
    ) -> (RouteTable, Vec<RouteConflict>) {
        let mut manifests: Vec<&Manifest> = manifests.into_iter().collect();
        manifests.sort_by(|a, b| a.name.cmp(&b.name));
        let mut table = RouteTable::default();
        let mut by_shape: BTreeMap<String, usize> = BTreeMap::new();
        let mut conflicts = Vec::new();

        for manifest in manifests {
            for hook in &manifest.hooks {
                let Hook::Http(http) = hook else { continue };
                let Some((shape, params)) = shape(&http.path) else {
                    continue;
                };
                let route = HttpRoute {
                    path: http.path.clone(),
                    methods: methods(&http.method),
                    function: manifest.name.clone(),
                    entrypoint: http
                        .entrypoint
                        .clone()
                        .unwrap_or_else(|| manifest.entrypoint.clone()),
                    params,
                };
                let index = match by_shape.get(&shape) {
                    Some(&index) => index,
                    None => {
                        let index = table.shapes.len();
                        let router = if shape.contains("{*") {
                            &mut table.greedy
                        } else {
                            &mut table.exact
                        };
                        if let Err(error) = router.insert(shape.clone(), index) {
                            conflicts.push(RouteConflict {
                                kept: "an earlier route".to_string(),
                                dropped: describe(&route),
                                reason: error.to_string(),
                            });
                            continue;
                        }
                        by_shape.insert(shape, index);
                        table.shapes.push(Vec::new());
                        index
                    }
                };
                let existing = &mut table.shapes[index];
                if let Some(earlier) = existing.iter().find(|r| overlaps(r, &route)) {
                    conflicts.push(RouteConflict {
                        kept: describe(earlier),
                        dropped: describe(&route),
                        reason: "same path and method".to_string(),
                    });
                    continue;
                }
                existing.push(route);
            }
        }
        (table, conflicts)
    }

    /// Finds the route for `method` and `path`. Parameter values are returned as matched;
    /// callers decode them if the path was percent-encoded.
    pub fn match_http(&self, method: &str, path: &str) -> HttpMatch<'_> {
        let method = method.to_ascii_uppercase();
        let mut allowed: Vec<String> = Vec::new();
        let mut path_matched = false;
        for router in [&self.exact, &self.greedy] {
            let Ok(matched) = router.at(path) else {
                continue;
            };
            path_matched = true;
            let routes = &self.shapes[*matched.value];
            // A route naming the method beats a route taking any method.
            let route = routes
                .iter()
                .find(|r| r.methods.is_some() && r.accepts(&method))
                .or_else(|| routes.iter().find(|r| r.methods.is_none()));
            if let Some(route) = route {
                let params = route
                    .params
                    .iter()
                    .cloned()
                    .zip(matched.params.iter().map(|(_, value)| value.to_string()))
                    .collect();
                return HttpMatch::Found { route, params };
            }
            allowed.extend(
                routes
                    .iter()
                    .flat_map(|r| r.methods.clone().unwrap_or_default()),
            );
        }
        if !path_matched {
            return HttpMatch::NotFound;
        }
        allowed.sort();
        allowed.dedup();
        HttpMatch::MethodNotAllowed { allowed }
    }

    /// Every HTTP route, grouped by path shape.
    pub fn http_routes(&self) -> impl Iterator<Item = &HttpRoute> {
        self.shapes.iter().flatten()
    }
}

fn overlaps(a: &HttpRoute, b: &HttpRoute) -> bool {
    match (&a.methods, &b.methods) {
        (None, None) => true,
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        // A specific method next to ANY is fine: the specific one wins for its method.
        _ => false,
    }
}

fn describe(route: &HttpRoute) -> String {
    let methods = route
        .methods
        .as_ref()
        .map(|m| m.join(","))
        .unwrap_or_else(|| "ANY".to_string());
    format!("{methods} {} -> {}", route.path, route.function)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, hooks: &str) -> Manifest {
        Manifest::parse(
            &format!("name: {name}\nruntime: wasm\nhooks:\n{hooks}"),
            "test",
            None,
        )
        .unwrap()
    }

    fn found<'a>(
        table: &'a RouteTable,
        method: &str,
        path: &str,
    ) -> (&'a str, BTreeMap<String, String>) {
        match table.match_http(method, path) {
            HttpMatch::Found { route, params } => (route.function.as_str(), params),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let manifests = [
            manifest(
                "static",
                "  - {type: http, method: GET, path: \"/hello/world\"}\n",
            ),
            manifest(
                "param",
                "  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
            ),
            manifest("greedy", "  - {type: http, path: \"/hello/{rest+}\"}\n"),
        ];
        let (table, conflicts) = RouteTable::build(&manifests);
        assert!(conflicts.is_empty(), "{conflicts:?}");
        assert_eq!(found(&table, "GET", "/hello/world").0, "static");
        let (function, params) = found(&table, "GET", "/hello/ada");
        assert_eq!(function, "param");
        assert_eq!(params["name"], "ada");
        let (function, params) = found(&table, "POST", "/hello/a/b/c");
        assert_eq!(function, "greedy");
        assert_eq!(params["rest"], "a/b/c");
        assert_eq!(table.match_http("GET", "/nope"), HttpMatch::NotFound);
    }

    #[test]
    fn methods_split_one_path_between_functions() {
        let manifests = [
            manifest(
                "reader",
                "  - {type: http, method: [GET, HEAD], path: \"/items/{id}\"}\n",
            ),
            manifest(
                "writer",
                "  - {type: http, method: PUT, path: \"/items/{key}\"}\n",
            ),
        ];
        let (table, conflicts) = RouteTable::build(&manifests);
        assert!(conflicts.is_empty());
        assert_eq!(found(&table, "GET", "/items/7").1["id"], "7");
        let (function, params) = found(&table, "put", "/items/7");
        assert_eq!(function, "writer");
        assert_eq!(params["key"], "7");
        assert_eq!(
            table.match_http("DELETE", "/items/7"),
            HttpMatch::MethodNotAllowed {
                allowed: vec!["GET".into(), "HEAD".into(), "PUT".into()]
            }
        );
    }

    #[test]
    fn duplicate_routes_keep_the_first_function_by_name() {
        let manifests = [
            manifest("b", "  - {type: http, method: GET, path: \"/x/{id}\"}\n"),
            manifest("a", "  - {type: http, method: GET, path: \"/x/{name}\"}\n"),
        ];
        let (table, conflicts) = RouteTable::build(&manifests);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].kept, "GET /x/{name} -> a");
        assert_eq!(found(&table, "GET", "/x/1").0, "a");
    }
}
