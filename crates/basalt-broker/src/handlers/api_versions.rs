//! ApiVersions (key 18), v0–4: the table of every API and version range the broker handles,
//! generated from [`super::SUPPORTED`].

use basalt_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

/// The response, with `error_code` (non-zero when answering an unsupported ApiVersions version).
pub fn handle(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code,
        api_keys: super::SUPPORTED
            .iter()
            .map(|s| ApiVersion {
                api_key: s.api_key.key(),
                min_version: s.advertised_min,
                max_version: s.max,
                ..ApiVersion::default()
            })
            .collect(),
        ..ApiVersionsResponse::default()
    }
}
