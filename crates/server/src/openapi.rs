//! The API's OpenAPI 3.1 document, generated from the code: request and object schemas come
//! from the Rust types (schemars, the same ones `manifests/*.schema.json` come from), the
//! operations from the table below, which mirrors [`crate::router`] (a test checks every
//! documented operation is routed). Served at `GET /api/v1/openapi.json` and written to
//! `manifests/openapi.json` (`cargo xtask openapi [--check]`).

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// One operation: method, path, id, summary, query parameters, request body schema (a name
/// under `components/schemas`), and whether it needs no token. Success responses are in
/// [`successes`].
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    public: bool,
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(item: &str) -> Value {
    json!({"type": "object", "required": ["items"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object", "properties": {
            "resourceVersion": {"type": "string"}, "continue": {"type": "string"},
            "remainingItemCount": {"type": "integer"}}},
        "items": {"type": "array", "items": r(item)}}})
}

fn status_page() -> Value {
    json!({"type": "object", "required": ["name", "status"], "properties": {
        "name": {"type": "string"}, "generation": {"type": ["integer", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]}, "status": {"type": "object"}}})
}

fn events_page() -> Value {
    json!({"type": "object", "required": ["name", "events"], "properties": {
        "name": {"type": "string"}, "events": {"type": "array", "items": {"type": "object"}}}})
}

fn deleted() -> Value {
    json!({"type": "object", "required": ["name", "result", "message"], "properties": {
        "name": {"type": "string"}, "result": {"enum": ["deleted", "terminating"]},
        "message": {"type": "string"}, "object": {"type": "object"}}})
}

fn written(kind: &str) -> Value {
    json!({"anyOf": [r(kind), {"type": "object", "required": ["dryRun", "change", "object"],
        "properties": {"dryRun": {"const": true}, "change": {"type": "string"},
                       "object": r(kind), "plan": {}, "notes": {}}}]})
}

const LIST_QUERY: &[(&str, &str)] = &[
    (
        "limit",
        "at most this many items (a page); `metadata.continue` gets the next",
    ),
    (
        "continue",
        "the token from the previous page's `metadata.continue`",
    ),
    (
        "labelSelector",
        "Kubernetes label selector, e.g. `team=bots,tier!=db`",
    ),
    ("fieldSelector", "`metadata.name=NAME`"),
];

fn ops() -> Vec<Op> {
    vec![
        Op {
            method: "get",
            path: "/healthz",
            id: "healthz",
            summary: "liveness",
            query: &[],
            body: None,
            public: true,
        },
        Op {
            method: "get",
            path: "/readyz",
            id: "readyz",
            summary: "readiness: the store answers",
            query: &[],
            body: None,
            public: true,
        },
        Op {
            method: "get",
            path: OPENAPI_PATH,
            id: "openapi",
            summary: "this document",
            query: &[],
            body: None,
            public: true,
        },
        Op {
            method: "get",
            path: "/metrics",
            id: "metrics",
            summary: "Prometheus text format",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters",
            id: "listBotClusters",
            summary: "list BotClusters (pages, selectors)",
            query: LIST_QUERY,
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters/{name}",
            id: "readBotCluster",
            summary: "read a BotCluster",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "put",
            path: "/api/v1/botclusters/{name}",
            id: "applyBotCluster",
            summary: "create or update a BotCluster (JSON or YAML body)",
            query: &[
                ("dryRun", "`true`: validate and preview, store nothing"),
                (
                    "force",
                    "`true`: write a BotCluster a GitSource manages anyway (else 409 `OwnedBySource`)",
                ),
            ],
            body: Some("BotCluster"),
            public: false,
        },
        Op {
            method: "delete",
            path: "/api/v1/botclusters/{name}",
            id: "deleteBotCluster",
            summary: "delete a BotCluster (202 while its containers are torn down)",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters/{name}/status",
            id: "readBotClusterStatus",
            summary: "a BotCluster's status",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters/{name}/events",
            id: "listBotClusterEvents",
            summary: "a BotCluster's events, newest first",
            query: &[("limit", "1 to 500, default 50")],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters/{name}/shards",
            id: "readBotClusterShards",
            summary: "a BotCluster's published shard map, pending rebalance, balance and tenant databases (404 NoShardMap without one)",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/botclusters/{name}/shards/route",
            id: "routeBotClusterShard",
            summary: "where a key, tenant or region lands under the published shard map",
            query: &[
                ("key", "a key (hash and range maps)"),
                ("tenant", "a tenant (tenant maps)"),
                ("region", "a region (geo maps)"),
            ],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/gitsources",
            id: "listGitSources",
            summary: "list GitSources (pages, selectors)",
            query: LIST_QUERY,
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/gitsources/{name}",
            id: "readGitSource",
            summary: "read a GitSource",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "put",
            path: "/api/v1/gitsources/{name}",
            id: "applyGitSource",
            summary: "create or update a GitSource (JSON or YAML body)",
            query: &[("dryRun", "`true`: validate, store nothing")],
            body: Some("GitSource"),
            public: false,
        },
        Op {
            method: "delete",
            path: "/api/v1/gitsources/{name}",
            id: "deleteGitSource",
            summary: "delete a GitSource (`cascade=true`: and the BotClusters it manages)",
            query: &[("cascade", "`true` or `false`")],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/gitsources/{name}/status",
            id: "readGitSourceStatus",
            summary: "a GitSource's status",
            query: &[],
            body: None,
            public: false,
        },
        Op {
            method: "get",
            path: "/api/v1/gitsources/{name}/events",
            id: "listGitSourceEvents",
            summary: "a GitSource's events",
            query: &[("limit", "1 to 500, default 50")],
            body: None,
            public: false,
        },
        Op {
            method: "post",
            path: "/api/v1/gitsources/{name}/sync",
            id: "syncGitSource",
            summary: "poll the repository now",
            query: &[],
            body: None,
            public: false,
        },
    ]
}

/// Success responses of an operation, by id.
fn successes(id: &str) -> Vec<(&'static str, Value)> {
    let text = || json!({"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text"});
    let js = |desc: &str, schema: Value| json!({"description": desc, "content": {"application/json": {"schema": schema}}});
    match id {
        "healthz" | "readyz" | "metrics" => vec![("200", text())],
        "openapi" => vec![("200", js("the OpenAPI document", json!({"type": "object"})))],
        "listBotClusters" => vec![("200", js("the list", list_of("BotCluster")))],
        "listGitSources" => vec![("200", js("the list", list_of("GitSource")))],
        "readBotCluster" => vec![("200", js("the object", r("BotCluster")))],
        "readGitSource" => vec![("200", js("the object", r("GitSource")))],
        "applyBotCluster" => vec![
            (
                "200",
                js("updated, unchanged, or a dry run", written("BotCluster")),
            ),
            ("201", js("created", r("BotCluster"))),
        ],
        "applyGitSource" => vec![
            (
                "200",
                js("updated, unchanged, or a dry run", written("GitSource")),
            ),
            ("201", js("created", r("GitSource"))),
        ],
        "deleteBotCluster" | "deleteGitSource" => vec![
            ("200", js("deleted", deleted())),
            ("202", js("being torn down", deleted())),
        ],
        "readBotClusterStatus" | "readGitSourceStatus" => {
            vec![("200", js("status", status_page()))]
        }
        "listBotClusterEvents" | "listGitSourceEvents" => {
            vec![("200", js("events", events_page()))]
        }
        "readBotClusterShards" => vec![(
            "200",
            js(
                "the shard map",
                json!({"type": "object", "required": ["name", "map"], "properties": {
                    "name": {"type": "string"}, "version": {"type": ["integer", "null"]},
                    "map": {"type": ["object", "null"]}, "pending": {"type": ["object", "null"]},
                    "balance": {"type": ["object", "null"]}, "databases": {"type": ["object", "null"]}}}),
            ),
        )],
        "routeBotClusterShard" => vec![(
            "200",
            js(
                "where it lands",
                json!({"type": "object", "required": ["shard", "version"], "properties": {
                    "shard": {"type": "string"}, "backend": {"type": "string"},
                    "database": {"type": "string"}, "slot": {"type": "integer"},
                    "version": {"type": "integer"}}}),
            ),
        )],
        _ => vec![("202", js("a poll was requested", json!({"type": "object"})))],
    }
}

/// Moves a schemars document's `$defs` into `schemas` (refs rewritten) and returns its root.
fn absorb(mut schema: Value, schemas: &mut Map<String, Value>) -> Value {
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("$ref") {
                    if let Some(rest) = r.strip_prefix("#/$defs/") {
                        *r = format!("#/components/schemas/{rest}");
                    }
                }
                m.values_mut().for_each(rewrite);
            }
            Value::Array(a) => a.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    rewrite(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        if let Some(Value::Object(defs)) = obj.remove("$defs") {
            for (k, v) in defs {
                schemas.entry(k).or_insert(v);
            }
        }
        for k in ["$schema", "$id"] {
            obj.remove(k);
        }
    }
    schema
}

fn error_schema() -> Value {
    json!({"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable: Invalid, BadRequest, NotFound, Conflict, TooLarge, Unauthorized, MethodNotAllowed, Internal, ..."},
        "message": {"type": "string", "description": "what went wrong and what to do"},
        "fieldErrors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
        "omittedFieldErrors": {"type": "integer", "minimum": 1}}})
}

fn build() -> Value {
    let mut schemas = Map::new();
    let bc = absorb(botcluster_api::schema::botcluster_schema(), &mut schemas);
    let gs = absorb(botcluster_api::gitsource::gitsource_schema(), &mut schemas);
    // What a PUT takes: the object, with `status` ignored (it is the controller's; the server
    // drops what a client sends, as Kubernetes does), so any status is acceptable input.
    for (kind, schema) in [("BotCluster", &bc), ("GitSource", &gs)] {
        let mut write = schema.clone();
        if let Some(props) = write.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "status".into(),
                json!({"description": "ignored on write: status is the controller's"}),
            );
            // A body without metadata (absent or null), or without a name, takes the name in
            // the URL: the server reads null as absent, as it does for every optional field.
            props.insert(
                "metadata".into(),
                json!({"anyOf": [r("ObjectMetaWrite"), {"type": "null"}]}),
            );
        }
        if let Some(req) = write.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|f| f != "metadata");
        }
        schemas.insert(format!("{kind}Write"), write);
    }
    if let Some(mut meta) = schemas.get("ObjectMeta").cloned() {
        if let Some(obj) = meta.as_object_mut() {
            obj.remove("required");
            if let Some(name) = obj.get_mut("properties").and_then(|p| p.get_mut("name")) {
                name["type"] = json!(["string", "null"]);
            }
        }
        schemas.insert("ObjectMetaWrite".into(), meta);
    }
    schemas.insert("BotCluster".into(), bc);
    schemas.insert("GitSource".into(), gs);
    schemas.insert("Error".into(), error_schema());
    let name_param = json!({"name": "name", "in": "path", "required": true,
        "description": "the object's name", "example": "example",
        "schema": {"type": "string", "maxLength": botcluster_api::MAX_NAME_LEN,
        "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"}});
    let mut paths = Map::new();
    for op in ops() {
        let mut params: Vec<Value> = Vec::new();
        if op.path.contains("{name}") {
            params.push(name_param.clone());
        }
        for (q, desc) in op.query {
            params.push(
                json!({"name": q, "in": "query", "required": false, "description": desc,
                               "schema": {"type": "string"}}),
            );
        }
        let mut responses = Map::new();
        for (code, resp) in successes(op.id) {
            responses.insert(code.into(), resp);
        }
        responses.insert(
            "default".into(),
            json!({"description": "an error, always in this shape",
            "content": {"application/json": {"schema": r("Error")}}}),
        );
        let mut o = json!({"operationId": op.id, "summary": op.summary, "parameters": params,
                           "responses": responses});
        if let Some(kind) = op.body {
            let mut json_body = json!({"schema": r(&format!("{kind}Write"))});
            if kind == "BotCluster" {
                // What the Examples phase of schemathesis sends: the smallest valid cluster.
                json_body["example"] = json!({"apiVersion": botcluster_api::API_VERSION,
                    "kind": kind, "metadata": {"name": "example"},
                    "spec": {"image": "botcluster-botserver"}});
            }
            o["requestBody"] = json!({"required": true, "content": {
                "application/json": json_body,
                "application/yaml": {"schema": {"type": "string"}}}});
        }
        if op.public {
            o["security"] = json!([]);
        }
        paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(op.method.into(), o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "botcluster", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Declarative BotClusters on LXD. Every error is {code, message, fieldErrors}; see docs/api.md and docs/security.md."},
        "servers": [{"url": "http://127.0.0.1:7780"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "the token in the server's data directory (file `token`)"}}}
    })
}

/// The document.
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The document as pretty JSON with a trailing newline (`manifests/openapi.json`'s content).
pub fn openapi_json() -> String {
    let mut s = serde_json::to_string_pretty(openapi()).unwrap_or_default();
    s.push('\n');
    s
}

/// The `(METHOD, path)` of every documented operation.
pub fn operations() -> Vec<(String, String)> {
    ops()
        .into_iter()
        .map(|o| (o.method.to_uppercase(), o.path.to_string()))
        .collect()
}
