//! SaslHandshake (key 17), v0–1: selects the SASL mechanism of the connection. The exchange
//! itself is owned by `basalt-server` (it gates requests before login); this only delegates.
//! After a v0 handshake the client sends raw SASL tokens, which the server reads itself.

use basalt_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use basalt_protocol::messages::sasl_handshake_response::SaslHandshakeResponse;
use basalt_server::ConnectionInfo;

/// Highest SaslHandshake version handled.
pub const MAX_VERSION: i16 = 1;

pub fn handle(
    conn: &ConnectionInfo,
    req: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    conn.sasl_handshake(&req.mechanism, version)
}
