//! The OpenAPI document, generated from the handlers' annotations so it
//! cannot drift from the routes.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::routes;
use super::views::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "redial", description = "Durable callback scheduling over SIP. Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`."),
    paths(
        routes::create_callback, routes::list_callbacks, routes::get_callback, routes::list_attempts,
        routes::change_callback, routes::cancel_callback, super::detections::detect, routes::stats, routes::list_agents,
        routes::set_agent_state, routes::list_trunks, super::admin::backup, super::admin::cluster, super::deliveries::list_deliveries, super::deliveries::retry_delivery,
        super::feed::audit, super::feed::events, openapi_json, routes::healthz, routes::metrics,
    ),
    components(schemas(CreateCallback, ChangeCallback, CallbackView, AttemptView, TimelineView, StatsView, OriginStatsView, routes::OriginParam, AgentView, RegistrationView,
        SetAgentState, SettableState, TrunkInfo, Health, ErrorBody, ErrorDetail, routes::StatusParam,
        super::admin::BackupRequest, super::admin::BackupView, crate::cluster::node::ClusterView,
        crate::cluster::node::NodeView, crate::cluster::node::ShardView, super::detections::DetectRequest, super::detections::DetectionView,
        super::deliveries::DeliveryView, super::deliveries::DeliveryList, super::feed::AuditView, super::feed::AuditList)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses(
        (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn openapi_json() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], Bytes::from(document_json())).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Every example in the document deserialises into the type it documents
    /// (request types) or round-trips through it (response types), so the
    /// examples cannot drift from the code either.
    #[test]
    fn examples_match_their_types() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let example = |name: &str| -> Value {
            let e = schemas[name]["example"].clone();
            assert!(e.is_object(), "{name} has no example");
            e
        };
        let req: CreateCallback = serde_json::from_value(example("CreateCallback")).unwrap();
        assert!(req.into_request(None).is_ok());
        let ch: ChangeCallback = serde_json::from_value(example("ChangeCallback")).unwrap();
        assert!(ch.into_changes(None).is_ok());
        let _: SetAgentState = serde_json::from_value(example("SetAgentState")).unwrap();
        let _: super::super::detections::DetectRequest = serde_json::from_value(example("DetectRequest")).unwrap();
        for (name, check) in [
            ("CallbackView", (|v: Value| serde_json::to_value(serde_json::from_value::<CallbackView>(v).unwrap()).unwrap()) as fn(Value) -> Value),
            ("AttemptView", |v| serde_json::to_value(serde_json::from_value::<AttemptView>(v).unwrap()).unwrap()),
            ("StatsView", |v| serde_json::to_value(serde_json::from_value::<StatsView>(v).unwrap()).unwrap()),
            ("AgentView", |v| serde_json::to_value(serde_json::from_value::<AgentView>(v).unwrap()).unwrap()),
            ("TrunkInfo", |v| serde_json::to_value(serde_json::from_value::<TrunkInfo>(v).unwrap()).unwrap()),
        ] {
            let e = example(name);
            assert_eq!(check(e.clone()), e, "{name} example does not round-trip");
            // Every property the schema lists is in the example.
            for p in schemas[name]["properties"].as_object().unwrap().keys() {
                assert!(e.get(p).is_some(), "{name} example lacks {p}");
            }
        }
        let err: Value = example("ErrorDetail");
        assert!(err["code"].is_string() && err["message"].is_string());
    }

    #[test]
    fn the_audit_log_and_the_event_stream_are_documented_with_their_parameters() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let params = |path: &str| -> Vec<String> {
            doc["paths"][path]["get"]["parameters"].as_array().unwrap_or_else(|| panic!("{path} has no parameters")).iter().map(|p| format!("{}:{}", p["in"].as_str().unwrap(), p["name"].as_str().unwrap())).collect()
        };
        assert_eq!(params("/v1/audit"), ["query:limit", "query:cursor"]);
        assert_eq!(params("/v1/events"), ["query:types", "query:queue", "header:Last-Event-ID"]);
        assert!(doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object());
        assert_eq!(doc["paths"]["/v1/audit"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/AuditList");
        let audit = &doc["components"]["schemas"]["AuditView"];
        for p in ["at", "actor", "action", "target", "detail"] {
            assert!(audit["properties"][p].is_object() && audit["example"][p].is_string(), "AuditView.{p}");
        }
        // PATCH documents the queue move.
        assert!(doc["components"]["schemas"]["ChangeCallback"]["properties"]["queue"].is_object());
    }

    #[test]
    fn every_operation_is_secured_except_health_and_metrics() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let secured = op["security"].is_array();
                assert_eq!(secured, path.starts_with("/v1/"), "{method} {path}");
            }
        }
    }
}
