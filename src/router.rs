//! The routing table, built once from all manifests whenever the catalog changes.
//!
//! HTTP hooks go into `matchit` routers, which make the most specific route win: a static
//! segment beats a `{param}`. Routes ending in a greedy `{rest+}` live in a second router that
//! is consulted only when no other route takes the request, so a greedy route never shadows a
//! more specific one.
//!
//! Batch hooks are indexed by kind and the resource they name (bucket, queue, topic, table,
//! stream, rule, event source, Kafka topic, broker queue, delivery stream, log group); a record
//! goes to every hook whose conditions (S3 prefix, suffix and event globs, database actions,
//! event detail type) it passes.
//!
//! Request hooks (WebSocket, authorizers, Cognito, AppSync, Bedrock agents, custom resources,
//! SES, raw) are indexed by kind; a request goes to the one most specific hook whose conditions
//! it passes: an exact value outweighs a list, a list a glob, prefix or suffix, and those a
//! presence test; conditions add up; ties go to the function first by name. Two hooks of one
//! kind with the same conditions conflict, and the later by name is not served.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::Manifest;
use crate::trigger::hook::{Attributes, Condition, Pattern};
use crate::trigger::http::Route;
use crate::trigger::{Family, HookKind, Request, Source};

/// One HTTP route of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub route: Route,
    pub function: String,
    pub entrypoint: String,
}

impl HttpRoute {
    /// The path as the manifest wrote it (`/hello/{name}`).
    pub fn path(&self) -> &str {
        &self.route.path
    }

    fn accepts(&self, method: &str) -> bool {
        match &self.route.methods {
            None => true,
            Some(methods) => methods.iter().any(|m| m == method),
        }
    }
}

/// Two hooks that cannot both be served; the one kept is named first.
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

/// One hook of one function, with the conditions an event must pass.
#[derive(Debug, Clone)]
pub struct HookRoute {
    pub function: String,
    pub entrypoint: String,
    conditions: Vec<Condition>,
    /// How specific the conditions are (request hooks: the most specific wins).
    weight: u32,
    /// What the hook matches, for conflicts.
    describe: String,
}

impl HookRoute {
    /// How specific the hook is (request hooks: the most specific matching one wins).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    fn accepts(&self, event: &dyn Attributes) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.holds(event))
    }
}

fn weight(conditions: &[Condition]) -> u32 {
    conditions
        .iter()
        .map(|condition| match &condition.pattern {
            Pattern::Is(_) => 8,
            Pattern::AnyOf(_) => 4,
            Pattern::Globs(_) | Pattern::Prefix(_) | Pattern::Suffix(_) => 2,
            Pattern::Present => 1,
        })
        .sum()
}

/// All routes of all functions.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
    /// Routes sharing one path shape, indexed by the router's values.
    shapes: Vec<Vec<HttpRoute>>,
    /// Batch hooks by kind, then resource.
    records: HashMap<HookKind, HashMap<String, Vec<HookRoute>>>,
    /// Request hooks by kind, most specific first.
    requests: HashMap<HookKind, Vec<HookRoute>>,
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
                let kind = hook.kind();
                if let Some(route) = &hook.compiled.route {
                    let route = HttpRoute {
                        route: route.clone(),
                        function: manifest.name.clone(),
                        entrypoint,
                    };
                    table.add_http(route, &mut by_shape, &mut conflicts);
                    continue;
                }
                let conditions = hook.compiled.conditions.clone();
                let route = HookRoute {
                    function: manifest.name.clone(),
                    entrypoint,
                    weight: weight(&conditions),
                    conditions,
                    describe: format!("{kind} {hook} -> {}", manifest.name),
                };
                match (kind.family(), hook.resource()) {
                    (Family::Batch, Some(resource)) => table
                        .records
                        .entry(kind)
                        .or_default()
                        .entry(resource.to_string())
                        .or_default()
                        .push(route),
                    _ => {
                        let routes = table.requests.entry(kind).or_default();
                        if let Some(earlier) =
                            routes.iter().find(|r| r.conditions == route.conditions)
                        {
                            conflicts.push(RouteConflict {
                                kept: earlier.describe.clone(),
                                dropped: route.describe.clone(),
                                reason: "same conditions".to_string(),
                            });
                            continue;
                        }
                        routes.push(route);
                    }
                }
            }
        }
        for routes in table.requests.values_mut() {
            // Stable: among equal weights, function-name order stays.
            routes.sort_by_key(|route| std::cmp::Reverse(route.weight));
        }
        (table, conflicts)
    }

    fn add_http(
        &mut self,
        route: HttpRoute,
        by_shape: &mut BTreeMap<String, usize>,
        conflicts: &mut Vec<RouteConflict>,
    ) {
        let shape = route.route.shape.clone();
        let index = match by_shape.get(&shape) {
            Some(&index) => index,
            None => {
                let index = self.shapes.len();
                let router = if route.route.greedy() {
                    &mut self.greedy
                } else {
                    &mut self.exact
                };
                if let Err(error) = router.insert(shape.clone(), index) {
                    conflicts.push(RouteConflict {
                        kept: "an earlier route".to_string(),
                        dropped: describe(&route),
                        reason: error.to_string(),
                    });
                    return;
                }
                by_shape.insert(shape, index);
                self.shapes.push(Vec::new());
                index
            }
        };
        let existing = &mut self.shapes[index];
        if let Some(earlier) = existing.iter().find(|r| overlaps(r, &route)) {
            conflicts.push(RouteConflict {
                kept: describe(earlier),
                dropped: describe(&route),
                reason: "same path and method".to_string(),
            });
            return;
        }
        existing.push(route);
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
                .find(|r| r.route.methods.is_some() && r.accepts(&method))
                .or_else(|| routes.iter().find(|r| r.route.methods.is_none()));
            if let Some(route) = route {
                let params = route
                    .route
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
                    .flat_map(|r| r.route.methods.clone().unwrap_or_default()),
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
    pub fn match_record(&self, source: &Source) -> Vec<&HookRoute> {
        let Some(routes) = self
            .records
            .get(&source.kind)
            .and_then(|by_resource| by_resource.get(&source.resource))
        else {
            return Vec::new();
        };
        let mut matched: Vec<&HookRoute> = Vec::new();
        for route in routes.iter().filter(|r| r.accepts(source)) {
            if !matched
                .iter()
                .any(|m| m.function == route.function && m.entrypoint == route.entrypoint)
            {
                matched.push(route);
            }
        }
        matched
    }

    /// The one hook a request goes to: the most specific that matches it.
    pub fn match_request(&self, request: &Request) -> Option<&HookRoute> {
        self.requests
            .get(&request.kind)?
            .iter()
            .find(|route| route.accepts(request))
    }

    /// How many batch and request hooks the table holds.
    #[cfg(test)]
    fn record_hooks(&self) -> usize {
        let records: usize = self
            .records
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum();
        records + self.requests.values().map(Vec::len).sum::<usize>()
    }
}

fn overlaps(a: &HttpRoute, b: &HttpRoute) -> bool {
    match (&a.route.methods, &b.route.methods) {
        (None, None) => true,
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        // A specific method next to ANY is fine: the specific one wins for its method.
        _ => false,
    }
}

fn describe(route: &HttpRoute) -> String {
    let methods = route
        .route
        .methods
        .as_ref()
        .map(|m| m.join(","))
        .unwrap_or_else(|| "ANY".to_string());
    format!("{methods} {} -> {}", route.route.path, route.function)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Request;

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
        let s3 = |key: &str, event: &str| {
            Source::new(HookKind::S3, "uploads", "s3")
                .with("key", key)
                .with("event", event)
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
        let users = |action: &str| {
            Source::new(HookKind::Database, "users", "database").with("action", action)
        };
        assert_eq!(functions(users("insert")), ["welcome:handle"]);
        assert_eq!(functions(users("delete")), ["sync:on_change"]);
        let order = |detail_type: &str| {
            Source::new(HookKind::Event, "com.example.orders", "event")
                .with("detail_type", detail_type)
        };
        assert_eq!(functions(order("OrderPlaced")), ["orders:handle"]);
        assert!(functions(order("OrderShipped")).is_empty());
        assert!(functions(Source::new(HookKind::Sqs, "jobs", "sqs")).is_empty());
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

    #[test]
    fn a_request_goes_to_its_most_specific_hook() {
        let manifests = [
            manifest("any-route", "  - {type: websocket, route: $default}\n"),
            manifest("chat", "  - {type: websocket, route: sendMessage}\n"),
            manifest("signup", "  - {type: cognito, trigger: \"PreSignUp_*\"}\n"),
            manifest(
                "signup-pool",
                "  - {type: cognito, trigger: \"PreSignUp_*\", user_pool: p1}\n",
            ),
            manifest("zz-chat", "  - {type: websocket, route: sendMessage}\n"),
        ];
        let (table, conflicts) = RouteTable::build(&manifests);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].dropped.contains("zz-chat"), "{conflicts:?}");
        let event = |kind, attributes: &[(&'static str, &str)]| {
            let mut request = Request::new(
                kind,
                "test",
                serde_json::Value::Null,
                &serde_json::Value::Null,
            );
            for (name, value) in attributes {
                request = request.with(name, *value);
            }
            request
        };
        let routed = |request: Request| table.match_request(&request).map(|r| r.function.clone());
        let message = |route| event(HookKind::Websocket, &[("route", route), ("message", route)]);
        assert_eq!(routed(message("sendMessage")).as_deref(), Some("chat"));
        assert_eq!(routed(message("other")).as_deref(), Some("any-route"));
        // `$default` never takes a connection.
        assert_eq!(
            routed(event(HookKind::Websocket, &[("route", "$connect")])),
            None
        );
        let signup = |pool| {
            event(
                HookKind::Cognito,
                &[("trigger", "PreSignUp_SignUp"), ("user_pool", pool)],
            )
        };
        assert_eq!(routed(signup("p1")).as_deref(), Some("signup-pool"));
        assert_eq!(routed(signup("p2")).as_deref(), Some("signup"));
    }
}
