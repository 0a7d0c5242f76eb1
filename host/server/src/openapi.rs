//! The OpenAPI 3.1 document of the REST API, generated from [`ROUTES`] and the types the
//! handlers take and answer (their `JsonSchema`). Nothing is written twice: a route's
//! method, path and role come from its table entry, the parameters, bodies and answers
//! from its types, and the answers every route of a kind gives (401/403 with a token, 400
//! with input, 404 with an id) are added here once.
//!
//! The committed copy, `docs/openapi.json`, is checked against [`document`] by a test
//! (`BULKHEAD_BLESS=1 cargo test -p bulkhead-server openapi` rewrites it).

use std::sync::LazyLock;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::api::{Access, ErrorBody, PageParams, ROUTES, Route};

/// A type's schema, as a function the route table can hold.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a `$ref` into the components for a named type).
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a route answers when it succeeds.
#[derive(Clone, Copy)]
pub enum Answer {
    /// A JSON body of this schema, with this status and description.
    Json(u16, &'static str, SchemaFn),
    /// A page of a listing (`{items, next_cursor}`) of this item; the route takes `limit`
    /// and `cursor` too.
    List(SchemaFn),
    /// No body.
    Empty(u16, &'static str),
    /// Text of this content type.
    Text(&'static str, &'static str),
    /// The query's result: JSON, table or CSV, as the request's `format` says.
    Query,
}

/// Another answer of a route (beyond the ones every route of its kind has).
#[derive(Clone, Copy)]
pub struct Extra {
    status: u16,
    description: &'static str,
    schema: SchemaFn,
}

impl Extra {
    /// An error answer (`{"error": {"code", "message"}}`).
    pub const fn error(status: u16, description: &'static str) -> Extra {
        Extra {
            status,
            description,
            schema: schema::<ErrorBody>,
        }
    }

    /// An answer with its own body.
    pub const fn json(status: u16, description: &'static str, schema: SchemaFn) -> Extra {
        Extra {
            status,
            description,
            schema,
        }
    }
}

/// How a route is documented: what only a person can say (summary, description, tag) and
/// the types it takes and answers.
#[derive(Clone, Copy)]
pub struct Doc {
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    /// Its query parameters: the properties of this (inline) type.
    pub query: Option<SchemaFn>,
    /// Its JSON body.
    pub body: Option<SchemaFn>,
    /// Authenticated by a registry's webhook secret instead of a token.
    pub secret: bool,
    pub ok: Answer,
    pub extra: &'static [Extra],
}

impl Doc {
    /// The fields a table entry does not set.
    pub const DEFAULT: Doc = Doc {
        tag: "",
        summary: "",
        description: "",
        query: None,
        body: None,
        secret: false,
        ok: Answer::Empty(200, ""),
        extra: &[],
    };
}

/// The document, generated once.
pub static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&document()).unwrap_or_else(|e| {
        // Cannot happen (a `Value` always serialises); answer a valid, empty document.
        tracing::error!("cannot serialise the OpenAPI document: {e}");
        "{}".into()
    })
});

/// The OpenAPI document of [`ROUTES`].
pub fn document() -> Value {
    // Answers are described as written (a nullable field is present as null); requests as
    // read (an optional field may be absent): two generators, one components section.
    let settings =
        |s: SchemaSettings| s.with(|s| s.definitions_path = "/components/schemas".into());
    let mut answers = settings(SchemaSettings::draft2020_12().for_serialize()).into_generator();
    let mut requests = settings(SchemaSettings::draft2020_12().for_deserialize()).into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let op = operation(route, &mut answers, &mut requests);
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(item) = item.as_object_mut() {
            item.insert(route.verb.as_str().into(), op);
        }
    }
    let mut schemas = requests.take_definitions(true);
    // An answer's form wins over a request's where a type is both (an enum, whose forms
    // are the same).
    schemas.extend(answers.take_definitions(true));
    let mut schemas = Value::Object(schemas);
    bulkhead_model::report::close_objects(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Bulkhead scan service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Scan-on-push: registry notifications in, vulnerability findings \
                out. Every /v1 route except the webhook and this document needs \
                `Authorization: Bearer <token>`; the token decides the tenant and its role \
                (`x-min-role` on each operation: reader < operator < admin). Another \
                tenant's objects answer exactly like objects that do not exist (404). \
                Errors are `{\"error\": {\"code\", \"message\"}}`; lists are `{\"items\", \
                \"next_cursor\"}` with `limit` and `cursor`; times are RFC 3339. Generated \
                from the service's route table (host/server/src/api.rs).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `bulkhead serve token create` or \
                        `POST /v1/tokens`.",
                },
                "registrySecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The registry's webhook secret, bare or as `Bearer \
                        <secret>` (Distribution: notifications.endpoints[].headers; Harbor: \
                        Auth Header).",
                },
            },
            "schemas": schemas,
        },
    })
}

/// One operation: the route's own words, then what its kind implies.
fn operation(
    route: &Route,
    answers: &mut SchemaGenerator,
    requests: &mut SchemaGenerator,
) -> Value {
    let doc = &route.doc;
    let mut op = Map::new();
    op.insert("tags".into(), json!([doc.tag]));
    op.insert("summary".into(), doc.summary.into());
    if !doc.description.is_empty() {
        op.insert("description".into(), doc.description.into());
    }
    match route.access {
        Access::Token(role) => {
            op.insert("x-min-role".into(), role.as_str().into());
        }
        Access::Public if doc.secret => {
            op.insert("security".into(), json!([{"registrySecret": []}]));
        }
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
    }

    let mut params = Vec::new();
    if route.path.contains("{id}") {
        params.push(json!({
            "name": "id", "in": "path", "required": true,
            "schema": {"type": "integer", "format": "int64"},
        }));
    }
    if let Some(query) = doc.query {
        params.extend(query_parameters(query(requests)));
    }
    if matches!(doc.ok, Answer::List(_)) {
        params.extend(query_parameters(requests.root_schema_for::<PageParams>()));
    }
    if !params.is_empty() {
        op.insert("parameters".into(), params.into());
    }
    if let Some(body) = doc.body {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": body(requests)}}}),
        );
    }

    let error = |g: &mut SchemaGenerator, description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": schema::<ErrorBody>(g)}}})
    };
    let mut responses = Map::new();
    let (status, ok) = match doc.ok {
        Answer::Json(status, description, s) => (
            status,
            json!({"description": description,
                   "content": {"application/json": {"schema": s(answers)}}}),
        ),
        Answer::List(item) => {
            let page = json!({
                "type": "object",
                "required": ["items", "next_cursor"],
                "additionalProperties": false,
                "properties": {
                    "items": {"type": "array", "items": item(answers)},
                    "next_cursor": {
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null on the \
                            last page.",
                    },
                },
            });
            (
                200,
                json!({"description": "A page.", "content": {"application/json": {"schema": page}}}),
            )
        }
        Answer::Empty(status, description) => (status, json!({"description": description})),
        Answer::Text(content_type, description) => (
            200,
            json!({"description": description,
                   "content": {content_type: {"schema": {"type": "string"}}}}),
        ),
        Answer::Query => (
            200,
            json!({"description": "The result, in the request's `format`.", "content": {
                "application/json": {"schema": schema::<crate::api::QueryResultBody>(answers)},
                "text/plain": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            }}),
        ),
    };
    responses.insert(status.to_string(), ok);
    if doc.query.is_some() || doc.body.is_some() || matches!(doc.ok, Answer::List(_)) {
        responses.insert(
            "400".into(),
            error(
                answers,
                "The query string or the body is not what this route takes.",
            ),
        );
    }
    if let Access::Token(_) = route.access {
        responses.insert(
            "401".into(),
            error(answers, "No token, or an unknown or revoked one."),
        );
        responses.insert(
            "403".into(),
            error(answers, "The token's role is below `x-min-role`."),
        );
    }
    if route.path.contains("{id}") {
        responses.insert(
            "404".into(),
            error(
                answers,
                "No such id, or another tenant's (the same answer).",
            ),
        );
    }
    for extra in doc.extra {
        responses.insert(
            extra.status.to_string(),
            json!({"description": extra.description,
                   "content": {"application/json": {"schema": (extra.schema)(answers)}}}),
        );
    }
    op.insert("responses".into(), responses.into());
    Value::Object(op)
}

/// A query parameter is absent or has a value: `null` is not one of its values.
fn not_null(mut schema: Value) -> Value {
    if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = any_of.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = rest[..] {
            let only = only.clone();
            if let Some(map) = schema.as_object_mut() {
                map.remove("anyOf");
                if let Some(o) = only.as_object() {
                    map.extend(o.clone());
                }
            }
        }
    }
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if let (Some(map), [only]) = (schema.as_object_mut(), &rest[..]) {
            map.insert("type".into(), only.clone());
        }
    }
    schema
}

/// The properties of an object schema as query parameters.
fn query_parameters(schema: Schema) -> Vec<Value> {
    let object = schema.as_value();
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = object["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = not_null(property.clone());
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"));
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let (Some(d), Some(p)) = (description, param.as_object_mut()) {
                p.insert("description".into(), d);
            }
            param
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;

    fn committed() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// The committed document is the generated one (`BULKHEAD_BLESS=1` rewrites it), so
    /// a change of a route or of an answer's type shows in review.
    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let generated = format!("{}\n", *OPENAPI);
        if std::env::var_os("BULKHEAD_BLESS").is_some() {
            std::fs::write(committed(), &generated).expect("write docs/openapi.json");
        }
        let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/openapi.json differs from the routes and types; regenerate it with \
             BULKHEAD_BLESS=1 cargo test -p bulkhead-server openapi"
        );
    }

    /// Every route is documented once, with its role, and every `$ref` resolves.
    #[test]
    fn every_route_is_documented_with_its_role_and_every_reference_resolves() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                documented.insert((method.clone(), path.clone()));
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
        let routed: BTreeSet<_> = ROUTES
            .iter()
            .map(|r| (r.verb.as_str().to_string(), r.path.to_string()))
            .collect();
        assert_eq!(routed.len(), ROUTES.len(), "a route is in the table twice");
        assert_eq!(routed, documented);
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.verb.as_str()];
            match r.access {
                Access::Token(role) => {
                    assert_eq!(op["x-min-role"], role.as_str(), "{}", r.path);
                    assert!(op.get("security").is_none(), "{}", r.path);
                }
                Access::Public => assert!(op["security"].is_array(), "{}", r.path),
            }
        }
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}: not a component reference"));
            assert!(schemas.contains_key(name), "{r} does not resolve");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{name}: not a valid component name"
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|c| collect_refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
            _ => {}
        }
    }
}
