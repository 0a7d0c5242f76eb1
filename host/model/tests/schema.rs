//! `docs/report.schema.json` is generated from the model's types: this test fails when the
//! committed file and the types part ways. Regenerate it with
//! `BULKHEAD_BLESS=1 cargo test -p bulkhead-model --test schema`.

use std::path::PathBuf;

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json")
}

#[test]
fn committed_schema_is_generated_from_the_types() {
    let mut generated =
        serde_json::to_string_pretty(&bulkhead_model::report::schema()).expect("serialise");
    generated.push('\n');
    let path = committed();
    if std::env::var_os("BULKHEAD_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/report.schema.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).expect("read docs/report.schema.json");
    assert!(
        on_disk == generated,
        "docs/report.schema.json differs from the schema of bulkhead_model::Report; \
         regenerate it: BULKHEAD_BLESS=1 cargo test -p bulkhead-model --test schema"
    );
}

#[test]
fn the_schema_names_its_version_and_closes_every_object() {
    let schema = bulkhead_model::report::schema();
    let text = schema.to_string();
    assert!(text.contains("\"schema_version\""));
    fn check(v: &serde_json::Value) {
        if let Some(map) = v.as_object() {
            if map.contains_key("properties") {
                assert_eq!(map.get("additionalProperties"), Some(&false.into()), "{v}");
            }
            map.values().for_each(check);
        } else if let Some(items) = v.as_array() {
            items.iter().for_each(check);
        }
    }
    check(&schema);
}
