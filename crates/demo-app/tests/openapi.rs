//! The committed OpenAPI document (`openapi.json`) must match the code, so
//! API changes show up in review as a diff of that file.

use utoipa::OpenApi;

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = demo_app::routes::ApiDoc::openapi().to_pretty_json().expect("serializable") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with `UPDATE_OPENAPI=1 cargo test -p demo-app --test openapi`",
        path.display()
    );
}

#[test]
fn every_documented_operation_has_a_success_response() {
    let doc = demo_app::routes::ApiDoc::openapi();
    assert!(doc.paths.paths.len() >= 15, "only {} paths documented", doc.paths.paths.len());
    for (path, item) in &doc.paths.paths {
        let operations = [&item.get, &item.post, &item.put, &item.delete];
        for op in operations.into_iter().flatten() {
            // 101 is a WebSocket upgrade's success.
            let ok = op.responses.responses.keys().any(|code| code.starts_with('2') || code == "101");
            assert!(ok, "{path} has an operation without a 2xx response");
        }
    }
}

#[test]
fn operation_ids_are_unique() {
    let doc = demo_app::routes::ApiDoc::openapi();
    let mut ids: Vec<String> = doc
        .paths
        .paths
        .values()
        .flat_map(|item| [&item.get, &item.post, &item.put, &item.delete])
        .flatten()
        .filter_map(|op| op.operation_id.clone())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "duplicate operationId in {ids:?}");
}

/// `(path, methods)` of every `.route("...", ...)` in the routers' source:
/// `get(`, `post(`, `put(`, `delete(` as written; `any(` as GET and POST.
fn served_routes() -> Vec<(String, Vec<&'static str>)> {
    let source = include_str!("../src/routes/mod.rs");
    let mut routes = Vec::new();
    for piece in source.split(".route(\"").skip(1) {
        let (path, rest) = piece.split_once('"').expect("a route path is a string literal");
        let handlers = &rest[..rest.find(".route(").unwrap_or(rest.len()).min(rest.find(';').unwrap_or(rest.len()))];
        let mut methods = Vec::new();
        for (call, method) in [("get(", "get"), ("post(", "post"), ("put(", "put"), ("delete(", "delete")] {
            let called = handlers
                .match_indices(call)
                .any(|(at, _)| !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'));
            if called {
                methods.push(method);
            }
        }
        if handlers.contains("any(") {
            methods.extend(["get", "post"]);
        }
        // `{*rest}` (axum's catch-all) is `{rest}` in OpenAPI.
        routes.push((path.replace("{*", "{"), methods));
    }
    routes
}

#[test]
fn the_document_describes_every_route_the_app_serves() {
    let doc = demo_app::routes::ApiDoc::openapi();
    let routes = served_routes();
    assert!(routes.len() >= 30, "found only {} routes in src/routes/mod.rs", routes.len());
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        let Some(item) = doc.paths.paths.get(path) else {
            missing.push(format!("{path} (no path)"));
            continue;
        };
        for method in methods {
            let documented = match *method {
                "get" => &item.get,
                "post" => &item.post,
                "put" => &item.put,
                _ => &item.delete,
            };
            if documented.is_none() {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "served but not in the OpenAPI document: {missing:?}");
}

#[test]
fn each_role_is_served_the_document_of_its_own_routes() {
    use clap::Parser as _;
    use demo_app::config::Config;
    let doc = |args: &[&str]| demo_app::routes::openapi_document(&Config::parse_from([&["demo-app"], args].concat()));
    let frontend = doc(&["--role", "frontend"]);
    let paths = &frontend.paths.paths;
    assert!(
        !paths.contains_key("/cache/{key}") && !paths.contains_key("/api/orders/{id}"),
        "the frontend has no store"
    );
    assert!(paths["/api/orders"].post.is_none(), "the frontend only lists orders (from its backend)");
    assert!(paths["/api/orders"].get.is_some() && paths.contains_key("/api/checkout"));
    let backend = doc(&["--role", "backend"]);
    assert!(!backend.paths.paths.contains_key("/api/checkout"), "the backend has no checkout");
    assert!(backend.paths.paths["/api/orders"].post.is_some());
    let locked = doc(&["--control-endpoints", "false"]);
    assert!(
        !locked
            .paths
            .paths
            .keys()
            .any(|p| p == "/panic" || p.starts_with("/fault_injection") || p.starts_with("/readyz/"))
    );
}

#[test]
fn the_order_list_takes_optional_query_parameters() {
    let doc = serde_json::to_value(demo_app::routes::ApiDoc::openapi()).unwrap();
    let parameters = doc["paths"]["/api/orders"]["get"]["parameters"].as_array().unwrap().clone();
    let names: Vec<_> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["limit", "after", "order"]);
    for parameter in &parameters {
        assert_eq!(parameter["in"], "query", "{parameter}");
        assert_ne!(parameter["required"], true, "{parameter}");
    }
    // Typed and bounded as the handler enforces them, so a generator (and a
    // client) knows that `limit=0` or `after=-1` is refused.
    let schema = |i: usize| parameters[i]["schema"].clone();
    assert_eq!(schema(0)["type"], "integer");
    assert_eq!((schema(0)["minimum"].as_i64(), schema(0)["maximum"].as_i64()), (Some(1), Some(100)));
    assert_eq!(schema(1)["type"], "integer");
    assert_eq!(schema(1)["minimum"].as_i64(), Some(0));
    assert_eq!(schema(2)["pattern"], "^(asc|desc)$");
}

#[test]
fn order_creation_and_checkout_document_their_idempotency_key() {
    let doc = serde_json::to_value(demo_app::routes::ApiDoc::openapi()).unwrap();
    for (path, method) in [("/api/orders", "post"), ("/api/checkout", "post")] {
        let parameters = doc["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
        let key = parameters
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{method} {path} does not document Idempotency-Key"));
        assert_eq!(key["in"], "header", "{path}");
        assert_ne!(key["required"], true, "{path}: the key is optional");
        assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$", "{path}: printable ASCII, 1 to 255");
    }
}

#[test]
fn every_operation_that_takes_a_body_documents_its_refusals() {
    let doc = demo_app::routes::ApiDoc::openapi();
    let (mut checked, mut json) = (0, 0);
    for (path, item) in &doc.paths.paths {
        for operation in [&item.post, &item.put].into_iter().flatten() {
            let takes_json = operation
                .request_body
                .as_ref()
                .is_some_and(|body| body.content.keys().any(|c| c == "application/json"));
            // Any body can be too large or meet a full memory budget; a JSON
            // one can also be malformed, of another type, or invalid.
            let refusals: &[&str] = if takes_json { &["400", "413", "415", "422", "503"] } else { &["413", "503"] };
            for code in refusals {
                assert!(operation.responses.responses.contains_key(*code), "{path}: no {code}");
            }
            checked += 1;
            json += usize::from(takes_json);
        }
    }
    assert!(checked >= 20, "only {checked} operations take a body");
    assert!(json >= 2, "only {json} operations take JSON: createOrder and checkout do");
}
