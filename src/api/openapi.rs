//! The OpenAPI document, generated from the handlers' annotations so it
//! cannot drift from the routes.

use std::sync::OnceLock;

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
        routes::change_callback, routes::cancel_callback, routes::stats, routes::list_agents,
        routes::set_agent_state, routes::list_trunks, routes::openapi_json, routes::healthz, routes::metrics,
    ),
    components(schemas(CreateCallback, ChangeCallback, CallbackView, AttemptView, StatsView, AgentView, RegistrationView,
        SetAgentState, SettableState, TrunkInfo, Health, ErrorBody, ErrorDetail, routes::StatusParam)),
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
