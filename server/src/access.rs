//! The access log: one JSON line per request — when, from where, which token
//! (by accessor), which path, the status and how long it took. Never a token,
//! a body or a query string: a query may carry data, and data may be secret.
//! The engine's own log is the audit trail; this is for operators.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Where access lines go.
pub(crate) struct AccessLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("enabled", &self.enabled()).finish()
    }
}

/// One request, as logged.
#[derive(Debug, Serialize)]
pub(crate) struct AccessLine<'a> {
    /// The engine's request id (its audit record's), for requests it answered.
    pub request_id: Option<&'a str>,
    pub remote: SocketAddr,
    pub method: &'a str,
    /// The path after `/v1/`, without the query string.
    pub path: &'a str,
    pub accessor: Option<&'a str>,
    pub status: u16,
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl AccessLog {
    pub(crate) fn new(sink: Option<Box<dyn Write + Send>>) -> AccessLog {
        AccessLog { sink: sink.map(Mutex::new) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub(crate) fn write(&self, line: &AccessLine<'_>) {
        let Some(sink) = &self.sink else { return };
        let time = crate::sys::now_rfc3339();
        #[derive(Serialize)]
        struct Stamped<'a> {
            time: String,
            #[serde(flatten)]
            line: &'a AccessLine<'a>,
        }
        let Ok(mut bytes) = serde_json::to_vec(&Stamped { time, line }) else { return };
        bytes.push(b'\n');
        let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A full disk or a closed pipe must not fail the request it describes.
        let _ = sink.write_all(&bytes).and_then(|()| sink.flush());
    }
}
