//! The routing table, built once from all manifests whenever the catalog changes.
//!
//! HTTP hooks go into `matchit` routers, which make the most specific route win: a static
//! segment beats a `{param}`. Routes ending in a greedy `{rest+}` live in a second router that
//! is consulted only when no other route takes the request, so a greedy route never shadows a
//! more specific one.
//!
//! Record hooks (`s3`, `sqs`, `sns`, `database`, `stream`, `schedule`, `event`) are indexed by
//! hook type and the resource they name (bucket, queue, topic, table, stream, rule, event
//! source); a record goes to every hook whose filters (S3 prefix, suffix and event globs,
//! database actions, event detail type) it passes.

use std::collections::{BTreeMap, HashMap};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::event::Source;
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

/// One record hook of one function.
#[derive(Debug, Clone)]
pub struct RecordRoute {
    pub function: String,
    pub entrypoint: String,
    filter: RecordFilter,
}

/// What a record must match beyond its hook type and resource.
#[derive(Debug, Clone)]
enum RecordFilter {
    Any,
    S3 {
        prefix: Option<String>,
        suffix: Option<String>,
        events: Option<GlobSet>,
    },
    Database {
        actions: Option<Vec<String>>,
    },
    Event {
        detail_type: Option<String>,
    },
}

impl RecordFilter {
    fn for_hook(hook: &Hook) -> RecordFilter {
        match hook {
            Hook::S3(s3) => RecordFilter::S3 {
                prefix: s3.prefix.clone(),
                suffix: s3.suffix.clone(),
                events: s3.events.as_ref().map(|events| {
                    let mut set = GlobSetBuilder::new();
                    for event in events {
                        // Validated with the manifest.
                        if let Ok(glob) = Glob::new(event.strip_prefix("s3:").unwrap_or(event)) {
                            set.add(glob);
                        }
                    }
                    set.build().unwrap_or_else(|_| GlobSet::empty())
                }),
            },
            Hook::Database(database) => RecordFilter::Database {
                actions: database.action.as_ref().map(OneOrMany::to_vec),
            },
            Hook::Event(event) => RecordFilter::Event {
                detail_type: event.detail_type.clone(),
            },
            _ => RecordFilter::Any,
        }
    }

    fn accepts(&self, source: &Source) -> bool {
        match (self, source) {
            (RecordFilter::Any, _) => true,
            (
                RecordFilter::S3 {
                    prefix,
                    suffix,
                    events,
                },
                Source::S3 { key, event, .. },
            ) => {
                prefix.as_ref().is_none_or(|p| key.starts_with(p.as_str()))
                    && suffix.as_ref().is_none_or(|s| key.ends_with(s.as_str()))
                    && events.as_ref().is_none_or(|globs| globs.is_match(event))
            }
            (RecordFilter::Database { actions }, Source::Database { action, .. }) => actions
                .as_ref()
                .is_none_or(|actions| actions.iter().any(|a| a == action)),
            (RecordFilter::Event { detail_type }, Source::Event { detail_type: d, .. }) => {
                detail_type.as_ref().is_none_or(|t| t == d)
            }
            _ => false,
        }
    }
}

/// All routes of all functions.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
    /// Routes sharing one path shape, indexed by the router's values.
    shapes: Vec<Vec<HttpRoute>>,
    /// Record hooks by hook type, then resource.
    records: HashMap<&'static str, HashMap<String, Vec<RecordRoute>>>,
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
                let entrypoint = hook
                    .entrypoint()
                    .unwrap_or(&manifest.entrypoint)
                    .to_string();
                if let Some(resource) = hook.resource() {
                    table
                        .records
                        .entry(hook.kind())
                        .or_default()
                        .entry(resource.to_string())
                        .or_default()
                        .push(RecordRoute {
                            function: manifest.name.clone(),
                            entrypoint,
                            filter: RecordFilter::for_hook(hook),
                        });
                    continue;
                }
                let Hook::Http(http) = hook else { continue };
                let Some((shape, params)) = shape(&http.path) else {
                    continue;
                };
                let route = HttpRoute {
                    path: http.path.clone(),
                    methods: methods(&http.method),
                    function: manifest.name.clone(),
                    entrypoint,
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

    /// Every function hook a record from `source` goes to, each (function, entrypoint) once,
    /// in function-name order.
    pub fn match_record(&self, source: &Source) -> Vec<&RecordRoute> {
        let Some(routes) = self
            .records
            .get(source.trigger())
            .and_then(|by_resource| by_resource.get(source.resource()))
        else {
            return Vec::new();
        };
        let mut matched: Vec<&RecordRoute> = Vec::new();
        for route in routes.iter().filter(|r| r.filter.accepts(source)) {
            if !matched
                .iter()
                .any(|m| m.function == route.function && m.entrypoint == route.entrypoint)
            {
                matched.push(route);
            }
        }
        matched
    }

    /// How many record hooks the table holds.
    pub fn record_hooks(&self) -> usize {
        self.records
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum()
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
    fn records_go_to_every_hook_whose_filters_they_pass() {
        let manifests = [
            manifest(
                "thumbnails",
                "  - {type: s3, bucket: uploads, prefix: incoming/, suffix: .png, events: [\"s3:ObjectCreated:*\"]}\n",
            ),
            manifest("audit", "  - {type: s3, bucket: uploads}\n"),
            manifest(
                "welcome",
                "  - {type: database, source: users, action: insert}\n",
            ),
            manifest(
                "sync",
                "  - {type: database, source: users, action: [update, delete], entrypoint: on_change}\n",
            ),
            manifest(
                "orders",
                "  - {type: event, source: com.example.orders, detail_type: OrderPlaced}\n",
            ),
        ];
        let (table, _) = RouteTable::build(&manifests);
        assert_eq!(table.record_hooks(), 5);
        let functions = |source: Source| -> Vec<String> {
            table
                .match_record(&source)
                .iter()
                .map(|r| format!("{}:{}", r.function, r.entrypoint))
                .collect()
        };
        let s3 = |key: &str, event: &str| Source::S3 {
            bucket: "uploads".into(),
            key: key.into(),
            event: event.into(),
        };
        assert_eq!(
            functions(s3("incoming/a b.png", "ObjectCreated:Put")),
            ["audit:handle", "thumbnails:handle"]
        );
        assert_eq!(
            functions(s3("incoming/a.png", "ObjectRemoved:Delete")),
            ["audit:handle"]
        );
        assert_eq!(
            functions(s3("other/a.png", "ObjectCreated:Put")),
            ["audit:handle"]
        );
        let users = |action| Source::Database {
            table: "users".into(),
            action,
        };
        assert_eq!(functions(users("insert")), ["welcome:handle"]);
        assert_eq!(functions(users("delete")), ["sync:on_change"]);
        let order = |detail_type: &str| Source::Event {
            source: "com.example.orders".into(),
            detail_type: detail_type.into(),
        };
        assert_eq!(functions(order("OrderPlaced")), ["orders:handle"]);
        assert!(functions(order("OrderShipped")).is_empty());
        assert!(
            functions(Source::Sqs {
                queue: "jobs".into()
            })
            .is_empty()
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
