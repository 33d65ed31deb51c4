//! The ready file (`redial serve --ready-file PATH`): the addresses every
//! listener actually bound, as JSON, written once all of them listen.
//!
//! With port 0 in `sip.listen` or `http.listen` the kernel picks the port; a
//! supervisor or a test reads the real one here instead of guessing a free
//! port. The file is written to a temporary name in the same directory and
//! renamed into place, so a reader sees either no file or the whole document,
//! never half of it. It is removed at start (a file left by an earlier run
//! must not be mistaken for this one) and after a graceful stop.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What the ready file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bound {
    /// SIP, UDP and TCP on the same port.
    pub sip: SocketAddr,
    /// SIP over WebSocket (`sip.ws_listen`), only when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws: Option<SocketAddr>,
    /// SIP over secure WebSocket (`sip.wss_listen`), only when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wss: Option<SocketAddr>,
    /// SIP over TLS (`sip.tls_listen`), when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_tls: Option<SocketAddr>,
    pub http: SocketAddr,
    pub media: Media,
}

/// RTP ports are bound per call from this range, so the range is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Media {
    pub addr: IpAddr,
    /// `first-last`, as in `media.ports`.
    pub ports: String,
}

impl Media {
    pub fn new(addr: IpAddr, ports: &RangeInclusive<u16>) -> Self {
        Self { addr, ports: format!("{}-{}", ports.start(), ports.end()) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the ready file {}: {source}", path.display())]
pub struct ReadyFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Removes a ready file left by an earlier run; a missing file is fine.
pub fn clear(path: &Path) -> Result<(), ReadyFileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ReadyFileError { path: path.to_path_buf(), source }),
    }
}

/// Writes `bound` to `path` atomically: a temporary file in the same
/// directory (a rename is only atomic within one file system), then rename.
pub fn write(path: &Path, bound: &Bound) -> Result<(), ReadyFileError> {
    let err = |source| ReadyFileError { path: path.to_path_buf(), source };
    let mut json = serde_json::to_vec(bound).map_err(|e| err(std::io::Error::other(e)))?;
    json.push(b'\n');
    let name = path.file_name().ok_or_else(|| err(std::io::Error::other("the path names no file")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> Bound {
        Bound {
            ws: None,
            wss: None,
            sip: "127.0.0.1:5062".parse().unwrap(),
            sip_tls: None,
            http: "127.0.0.1:8081".parse().unwrap(),
            media: Media::new("127.0.0.1".parse().unwrap(), &(20000..=20999)),
        }
    }

    #[test]
    fn writes_the_bound_addresses_as_json_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        write(&path, &bound()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"sip": "127.0.0.1:5062", "http": "127.0.0.1:8081", "media": {"addr": "127.0.0.1", "ports": "20000-20999"}})
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ready.json")]);
    }

    #[test]
    fn replaces_an_old_file_and_clear_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        std::fs::write(&path, "stale").unwrap();
        write(&path, &bound()).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("5062"));
        clear(&path).unwrap();
        assert!(!path.exists());
        clear(&path).unwrap();
    }

    #[test]
    fn a_missing_directory_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/ready.json");
        let e = write(&path, &bound()).unwrap_err();
        assert!(e.to_string().contains("no/such/ready.json"), "{e}");
    }
}
