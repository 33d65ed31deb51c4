//! Reading the transaction-relevant parts of rsip messages, and the few messages a transaction
//! builds itself (100 Trying, the ACK for a non-2xx final).

use rsip::headers::{ToTypedHeader, UntypedHeader};
use rsip::prelude::HeadersExt;
use rsip::{Header, Headers, Method, Request, Response, StatusCode};

use super::error::TransactionError;

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The top Via of a message. rsip keeps a comma-separated Via line as one header, so the first
/// value of the first Via header is taken.
pub fn top_via(headers: &Headers) -> Result<rsip::typed::Via, TransactionError> {
    let via = headers
        .iter()
        .find_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
        .ok_or(TransactionError::MissingHeader { header: "Via" })?;
    let value = via.value();
    let first = value.split(',').next().unwrap_or(value).trim();
    rsip::headers::Via::new(first)
        .typed()
        .map_err(|_| TransactionError::MalformedHeader { header: "Via" })
}
/// The branch (None without one) and the lower-cased sent-by of the top Via, read in place:
/// what a server transaction key needs (§17.2.3), without rsip's typed Via parse, which cost
/// more than the transaction itself on every request. `sent-by` is the text between the
/// protocol and the first `;`, the branch the value of the first `branch` param; a Via
/// without sent-by is malformed.
pub fn top_via_key_parts(headers: &Headers) -> Result<(Option<String>, String), TransactionError> {
    let via = headers
        .iter()
        .find_map(|h| match h {
            Header::Via(v) => Some(v.value()),
            _ => None,
        })
        .ok_or(TransactionError::MissingHeader { header: "Via" })?;
    let first = via.split(',').next().unwrap_or(via).trim();
    let malformed = TransactionError::MalformedHeader { header: "Via" };
    let (_, rest) = first.split_once([' ', '\t']).ok_or(malformed.clone())?;
    let mut parts = rest.split(';');
    let sent_by = parts.next().unwrap_or("").trim();
    if sent_by.is_empty() {
        return Err(malformed);
    }
    let branch = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("branch").then(|| value.trim().to_string())
    });
    Ok((branch, sent_by.to_ascii_lowercase()))
}


/// The branch parameter of a Via, if any.
pub fn branch_of(via: &rsip::typed::Via) -> Option<String> {
    via.branch().map(|b| b.to_string())
}

/// The sent-by of a Via as `host[:port]` text, as compared by §17.2.3.
pub fn sent_by_of(via: &rsip::typed::Via) -> String {
    via.uri.host_with_port.to_string().to_ascii_lowercase()
}

/// CSeq number and method.
pub fn cseq_of(headers: &Headers) -> Result<(u32, Method), TransactionError> {
    let cseq = headers
        .iter()
        .find_map(|h| match h {
            Header::CSeq(c) => Some(c),
            _ => None,
        })
        .ok_or(TransactionError::MissingHeader { header: "CSeq" })?
        .typed()
        .map_err(|_| TransactionError::MalformedHeader { header: "CSeq" })?;
    Ok((cseq.seq, cseq.method))
}

/// The Call-ID text, or `""` when absent (only used for tracing and legacy matching).
pub fn call_id_of(headers: &Headers) -> String {
    headers
        .iter()
        .find_map(|h| match h {
            Header::CallId(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The From tag, if any.
pub fn from_tag_of<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.from_header().ok()?.tag().ok()?.map(|t| t.to_string())
}

/// The To tag, if any.
pub fn to_tag_of<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.to_header().ok()?.tag().ok()?.map(|t| t.to_string())
}

/// A response to `request` with the headers §8.2.6.2 requires copied (Via, From, To, Call-ID,
/// CSeq) and an empty body. Adding a To tag is left to the caller (not needed for 100 Trying).
pub fn response_for(request: &Request, status: StatusCode) -> Response {
    let mut headers = Headers::default();
    for h in request.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Response { status_code: status, version: rsip::Version::V2, headers, body: vec![] }
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (§17.1.1.3): same
/// Request-URI, Call-ID, From, CSeq number and top Via as the INVITE, the To of the response,
/// and the INVITE's Route headers.
pub fn ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    let mut via_done = false;
    for h in invite.headers.iter() {
        match h {
            Header::Via(v) if !via_done => {
                via_done = true;
                let value = v.value();
                let first = value.split(',').next().unwrap_or(value).trim();
                headers.push(Header::Via(rsip::headers::Via::new(first)));
            }
            Header::From(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => {
                headers.push(h.clone())
            }
            Header::CSeq(c) => {
                let seq = c.seq().unwrap_or(0);
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
            }
            Header::To(to) => {
                let to = response.to_header().cloned().unwrap_or_else(|_| to.clone());
                headers.push(Header::To(to));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: vec![],
    }
}
