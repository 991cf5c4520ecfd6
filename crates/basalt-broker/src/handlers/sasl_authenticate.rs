//! SaslAuthenticate (key 36), v0–2: one step of the SASL exchange selected by SaslHandshake,
//! delegated to `basalt-server`, which owns the exchange state of the connection. From v1 the
//! response carries the session lifetime (`connections.max.reauth.ms`, KIP-368).

use basalt_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use basalt_protocol::messages::sasl_authenticate_response::SaslAuthenticateResponse;
use basalt_server::ConnectionInfo;

/// Highest SaslAuthenticate version handled.
pub const MAX_VERSION: i16 = 2;

pub async fn handle(
    conn: &ConnectionInfo,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    conn.sasl_authenticate(req.auth_bytes).await
}
