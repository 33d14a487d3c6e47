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
            let ok = op.responses.responses.keys().any(|code| code.starts_with('2'));
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
