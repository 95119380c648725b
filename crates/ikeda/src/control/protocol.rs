//! The control protocol's messages, and the parser of a request line: no
//! I/O here, so the fuzz target `control_protocol` compiles this file alone
//! (the `ikeda` crate has no library target).

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    Status,
    ShowIke,
    ShowChild,
    ShowPolicy,
    /// The IKE engines' counters (refused, dropped, answered).
    ShowCounters,
    Up {
        conn: String,
    },
    Down {
        conn: String,
    },
    /// Rekey the connection's CHILD SA now (or, with `ike`, its IKE SA).
    Rekey {
        conn: String,
        #[serde(default)]
        ike: bool,
        /// IKEv2: which `[[conn.child]]` (by name); none: the first CHILD SA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child: Option<String>,
    },
    Reload,
    Log {
        #[serde(default)]
        follow: bool,
        #[serde(default = "default_lines")]
        lines: usize,
    },
}

fn default_lines() -> usize {
    100
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            ok: true,
            error: None,
            result,
        }
    }
    pub fn err(e: impl Into<String>) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            ok: false,
            error: Some(e.into()),
            result: serde_json::Value::Null,
        }
    }
}

/// One entry of the event stream.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Unix time, milliseconds.
    pub time_ms: u64,
    /// The connection, or "" for the daemon itself.
    pub conn: String,
    /// exchange, ike-up, ike-down, child-up, child-down, failed, control.
    pub kind: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
pub struct EventLine {
    pub version: u32,
    pub event: LogEvent,
}

/// One request line as a client sent it: the request, or the error
/// response to send back (not JSON, another protocol version, not a
/// request of this version).
pub fn parse_request(line: &str) -> Result<Request, Response> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| Response::err(format!("not a JSON request: {e}")))?;
    let version = v.get("version").and_then(|x| x.as_u64());
    if version != Some(PROTOCOL_VERSION as u64) {
        return Err(Response::err(format!(
            "protocol version {} is not supported; this daemon speaks version {PROTOCOL_VERSION}",
            version.map_or("(none)".into(), |v| v.to_string())
        )));
    }
    serde_json::from_value(v).map_err(|e| Response::err(format!("bad request: {e}")))
}
