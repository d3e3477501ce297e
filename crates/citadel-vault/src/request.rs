//! A request and its response as the core sees them: no HTTP, no sockets.
//! The HTTP layer builds a [`Request`] from a method, a URL and a body, and
//! renders a [`Response`] as a status, headers and a JSON body; tests and
//! fuzzers build them directly.

use serde_json::Value;
use zeroize::Zeroizing;

/// What a request does (Vault's `logical.Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// GET.
    Read,
    /// LIST, or GET with `?list=true`.
    List,
    /// PUT or POST to something that does not exist yet (decided by the
    /// core from the route's existence check; never sent by a client).
    Create,
    /// PUT or POST.
    Update,
    /// DELETE.
    Delete,
    /// PATCH (JSON merge patch).
    Patch,
}

impl Operation {
    /// The capability a policy must grant for it.
    pub fn capability(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Patch => "patch",
        }
    }

    /// A name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        self.capability()
    }
}

/// A request to the vault.
#[derive(Clone, Debug)]
pub struct Request {
    /// What to do.
    pub operation: Operation,
    /// The raw path after `/v1/`, still percent-encoded.
    pub path: String,
    /// The raw query string (after `?`), still encoded.
    pub query: String,
    /// The body: JSON, or empty.
    pub body: Vec<u8>,
    /// The client token, if one was sent.
    pub token: Option<Zeroizing<String>>,
    /// The client's address (for logs).
    pub client: Option<std::net::IpAddr>,
}

impl Request {
    /// A request with no query, body or token.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            operation,
            path: path.into(),
            query: String::new(),
            body: Vec::new(),
            token: None,
            client: None,
        }
    }

    /// With this token.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(Zeroizing::new(token.to_string()));
        self
    }

    /// With this JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = body.to_string().into_bytes();
        self
    }

    /// With this raw query string.
    pub fn query(mut self, q: &str) -> Self {
        self.query = q.to_string();
        self
    }
}

/// The body of a response.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// No body (204).
    Empty,
    /// This JSON, as it is (`sys/health`, `sys/seal-status`, listings in
    /// Vault's legacy shape).
    Json(Value),
    /// Vault's response envelope around `data` and `auth`: the HTTP layer
    /// adds `request_id`, `lease_id`, `renewable`, `lease_duration`,
    /// `wrap_info`, `warnings` and `mount_type`.
    Envelope {
        /// The `data` object (or null).
        data: Value,
        /// The `auth` block of a login or token creation (or null).
        auth: Value,
        /// The kind of mount that answered.
        mount_type: &'static str,
    },
    /// `{"errors": [...]}`.
    Errors(Vec<String>),
    /// Plain text (the Prometheus exposition).
    Text {
        /// Its `Content-Type`.
        content_type: &'static str,
        /// The text.
        text: String,
    },
    /// A redirect to this path (relative to `/v1/`).
    Redirect(String),
}

/// A response, and what the request log line records about the request.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// The request's id (in the envelope, the audit log and the server log).
    pub request_id: String,
    /// The canonical path (empty when the path did not canonicalise).
    pub path: String,
    /// The route, for metrics: the mount path and the route pattern
    /// (`secret/ data/:path`), never a client-chosen name.
    pub route: String,
    /// The token's accessor, when the request carried a valid token.
    pub accessor: Option<String>,
}

impl Response {
    /// The JSON body as the HTTP layer sends it (`None` for an empty,
    /// text or redirect body): the envelope gets its `request_id` and
    /// Vault's lease fields.
    pub fn json_body(&self) -> Option<Value> {
        match &self.body {
            Body::Json(v) => Some(v.clone()),
            Body::Errors(e) => Some(serde_json::json!({ "errors": e })),
            Body::Envelope {
                data,
                auth,
                mount_type,
            } => Some(serde_json::json!({
                "request_id": self.request_id, "lease_id": "", "renewable": false,
                "lease_duration": 0, "data": data, "wrap_info": null, "warnings": null,
                "auth": auth, "mount_type": mount_type,
            })),
            Body::Empty | Body::Text { .. } | Body::Redirect(_) => None,
        }
    }

    /// A response with this status and body.
    pub fn new(status: u16, body: Body) -> Self {
        Self {
            status,
            body,
            request_id: String::new(),
            path: String::new(),
            route: String::new(),
            accessor: None,
        }
    }

    /// 200 with a Vault envelope.
    pub fn data(data: Value, mount_type: &'static str) -> Self {
        Self::new(
            200,
            Body::Envelope {
                data,
                auth: Value::Null,
                mount_type,
            },
        )
    }

    /// 200 with this JSON as it is.
    pub fn json(v: Value) -> Self {
        Self::new(200, Body::Json(v))
    }

    /// 204.
    pub fn no_content() -> Self {
        Self::new(204, Body::Empty)
    }

    /// 404 with `{"errors": []}`, as Vault answers a missing object.
    pub fn not_found() -> Self {
        Self::new(404, Body::Errors(Vec::new()))
    }
}
