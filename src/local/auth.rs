//! AWS_IAM authorization of `tapctl local`: checks a request's Signature Version 4 the way API
//! Gateway does for `execute-api`, and refuses with API Gateway's own status and message, so a
//! client that works against the local API works against the deployed one and the reverse.
//!
//! The canonical request is rebuilt as the AWS SDK for Rust builds it (aws-sigv4's default
//! `SigningSettings`: path normalised, then encoded a second time; query decoded and re-encoded;
//! only the signed headers). Every refusal is a 403, as API Gateway's IAM authorizer answers
//! before any integration runs. No message echoes a signature or secret.
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// API Gateway's signing name.
pub const EXECUTE_API: &str = "execute-api";
const TERMINATOR: &str = "aws4_request";
const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";
/// API Gateway's clock-skew tolerance, in minutes.
const EXECUTE_API_SKEW_MINUTES: i64 = 5;
/// Most other services' (Lambda's among them).
const SKEW_MINUTES: i64 = 15;

/// SigV4's `UriEncode`: everything but the unreserved characters of RFC 3986.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The path keeps its separators.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token: a request signed with them must carry it
    /// (`X-Amz-Security-Token`), as AWS refuses the key without it.
    pub session_token: Option<String>,
}

/// Who signed: the access key id (API Gateway puts it in requestContext.identity.accessKey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
}

#[derive(Debug, PartialEq)]
pub enum Refusal {
    MissingAuthenticationToken,
    /// The Authorization header cannot be used as it is; the message says why. API Gateway's
    /// scope refusals (region, service, date) are carried here too: they share the status and
    /// the message is all a client sees.
    IncompleteSignature(String),
    UnknownAccessKey,
    SignatureMismatch,
    SignatureExpired(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        403
    }

    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            Refusal::MissingAuthenticationToken => "Missing Authentication Token",
            Refusal::IncompleteSignature(m) | Refusal::SignatureExpired(m) => m.as_str(),
            Refusal::UnknownAccessKey => "The security token included in the request is invalid.",
            Refusal::SignatureMismatch => {
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details."
            }
        };
        serde_json::json!({ "message": message })
    }
}

/// `path_and_query` as received (e.g. "/live/process?x=1"); headers as received; body bytes.
/// `service` is what the signature must be scoped to: `execute-api` (API Gateway's check, the
/// API's requests) or `lambda` (the Invoke `tapctl local` serves to the functions).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    service: &str,
    method: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    region: &str,
    known: &[Credentials],
    now: SystemTime,
) -> Result<Caller, Refusal> {
    // A presigned URL (X-Amz-Signature in the query) is not accepted locally: the request is
    // treated as unsigned.
    let authorization = headers.get(http::header::AUTHORIZATION).ok_or(Refusal::MissingAuthenticationToken)?;
    let authorization = String::from_utf8_lossy(authorization.as_bytes());
    let auth = parse_authorization(&authorization, headers)?;

    let scope = parse_scope(auth.credential)?;
    let date = request_date(headers)?;
    if scope.region != region {
        return Err(Refusal::IncompleteSignature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            scope.region
        )));
    }
    if scope.service != service {
        return Err(Refusal::IncompleteSignature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if scope.terminator != TERMINATOR {
        return Err(Refusal::IncompleteSignature(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'. ",
            scope.terminator
        )));
    }
    if scope.date != date.format("%Y%m%d").to_string() {
        return Err(Refusal::IncompleteSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{}'.",
            scope.date,
            date.format("%Y%m%d"),
            date.format(AMZ_DATE)
        )));
    }
    check_skew(date, now, if service == EXECUTE_API { EXECUTE_API_SKEW_MINUTES } else { SKEW_MINUTES })?;

    let credentials = known.iter().find(|c| c.access_key_id == scope.access_key_id).ok_or(Refusal::UnknownAccessKey)?;
    // Temporary keys need their token, and long-term keys take none: AWS refuses both mixes.
    let sent = headers.get("x-amz-security-token").map(|v| v.as_bytes());
    let token_matches = match (&credentials.session_token, sent) {
        (Some(token), Some(sent)) => constant_time_eq(sent, token.as_bytes()),
        (None, None) => true,
        _ => false,
    };
    if !token_matches {
        return Err(Refusal::UnknownAccessKey);
    }

    let signed_headers: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(Refusal::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }

    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    // The payload hash is always the body's own: an x-amz-content-sha256 the client signed
    // must equal it, or the signature it made cannot match, so a body swapped under a signed
    // hash is refused.
    let canonical_request = [
        method.to_string(),
        canonical_uri(path),
        canonical_query(query),
        canonical_headers(&signed_headers, headers),
        auth.signed_headers.to_string(),
        hex(&Sha256::digest(body)),
    ]
    .join("\n");
    let amz_date = date.format(AMZ_DATE).to_string();
    let credential_scope = format!("{}/{region}/{service}/{TERMINATOR}", scope.date);
    let string_to_sign =
        format!("{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));

    let key = signing_key(&credentials.secret_access_key, scope.date, region, service)?;
    let provided = unhex(auth.signature).ok_or(Refusal::SignatureMismatch)?;
    let mut mac = hmac_sha256(&key)?;
    mac.update(string_to_sign.as_bytes());
    // verify_slice compares in constant time, so timing tells nothing about the right signature.
    mac.verify_slice(&provided).map_err(|_| Refusal::SignatureMismatch)?;

    Ok(Caller { access_key_id: credentials.access_key_id.clone() })
}

struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`, with API Gateway's
/// IncompleteSignatureException messages, minus the `Authorization=<header>` it appends: the
/// header holds the signature, which is not repeated back.
fn parse_authorization<'a>(value: &'a str, headers: &http::HeaderMap) -> Result<Authorization<'a>, Refusal> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            // API Gateway names the bad pair only by its hash, as it may be a bearer token.
            return Err(Refusal::IncompleteSignature(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header (hashed \
                 with SHA-256 and encoded with Base64): '{}'.",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(pair.as_bytes()))
            )));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }

    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if !headers.contains_key("x-amz-date") && !headers.contains_key(http::header::DATE) {
        missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    }
    if !missing.is_empty() {
        return Err(Refusal::IncompleteSignature(missing.join(" ")));
    }
    if algorithm != ALGORITHM {
        return Err(Refusal::IncompleteSignature(format!(
            "Unsupported Authorization Type: only '{ALGORITHM}' is accepted."
        )));
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => {
            Ok(Authorization { credential, signed_headers, signature })
        }
        _ => Err(Refusal::MissingAuthenticationToken),
    }
}

struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

fn parse_scope(credential: &str) -> Result<Scope<'_>, Refusal> {
    match credential.split('/').collect::<Vec<_>>().as_slice() {
        [access_key_id, date, region, service, terminator] => {
            Ok(Scope { access_key_id, date, region, service, terminator })
        }
        _ => Err(Refusal::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'"
        ))),
    }
}

/// X-Amz-Date, else the HTTP Date header, as SigV4 allows either.
fn request_date(headers: &http::HeaderMap) -> Result<DateTime<Utc>, Refusal> {
    let unparsable = |name: &str, value: &str| {
        Refusal::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{value}' from '{name}'. See \
             http://en.wikipedia.org/wiki/ISO_8601"
        ))
    };
    if let Some(v) = headers.get("x-amz-date") {
        let v = String::from_utf8_lossy(v.as_bytes());
        return NaiveDateTime::parse_from_str(v.trim(), AMZ_DATE)
            .map(|d| d.and_utc())
            .map_err(|_| unparsable("X-Amz-Date", &v));
    }
    if let Some(v) = headers.get(http::header::DATE) {
        let v = String::from_utf8_lossy(v.as_bytes());
        return DateTime::parse_from_rfc2822(v.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| unparsable("Date", &v));
    }
    Err(Refusal::IncompleteSignature(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
    ))
}

fn check_skew(date: DateTime<Utc>, now: SystemTime, minutes: i64) -> Result<(), Refusal> {
    let now = DateTime::<Utc>::from(now);
    // Whole seconds, as X-Amz-Date has no fraction: a request signed this second is current.
    let now = now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let skew = TimeDelta::minutes(minutes);
    let fmt = |d: DateTime<Utc>| d.format(AMZ_DATE).to_string();
    if date < now - skew {
        return Err(Refusal::SignatureExpired(format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            fmt(date),
            fmt(now - skew),
            fmt(now)
        )));
    }
    if date > now + skew {
        return Err(Refusal::SignatureExpired(format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            fmt(date),
            fmt(now + skew),
            fmt(now)
        )));
    }
    Ok(())
}

/// The path as the SDK signs it: dot segments and empty segments removed (RFC 3986 §5.2.4),
/// then encoded once more although it arrives encoded — so `%20` is signed as `%2520`.
fn canonical_uri(path: &str) -> String {
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let path = if path.contains('.') || path.contains("//") { remove_dot_segments(&path) } else { path };
    utf8_percent_encode(&path, PATH).to_string()
}

fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = format!("/{}", kept.join("/"));
    let ends_with_slash = ["/", "/.", "/./", "/..", "/../"].iter().any(|s| path.ends_with(s));
    if ends_with_slash && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Parameters decoded as a form (`+` is a space), re-encoded with SigV4's `UriEncode`, sorted by
/// encoded name then value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            (utf8_percent_encode(&k, UNRESERVED).to_string(), utf8_percent_encode(&v, UNRESERVED).to_string())
        })
        .collect();
    params.sort();
    params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// One `name:value` line per signed header, repeated values joined by commas, each value trimmed
/// and its runs of spaces collapsed; ends with the blank line of the canonical request.
fn canonical_headers(signed: &[&str], headers: &http::HeaderMap) -> String {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> =
            headers.get_all(*name).iter().map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes()))).collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// Only spaces, as the SDK does: tabs and other whitespace are part of the value.
fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.trim_matches(' ').chars() {
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

/// HMAC takes a key of any length, so this never fails; it is a `Result` only to spare the
/// server a panic path.
fn hmac_sha256(key: &[u8]) -> Result<Hmac<Sha256>, Refusal> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| Refusal::SignatureMismatch)
}

fn hmac_bytes(key: &[u8], data: &str) -> Result<Vec<u8>, Refusal> {
    let mut mac = hmac_sha256(key)?;
    mac.update(data.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Result<Vec<u8>, Refusal> {
    let k_date = hmac_bytes(format!("AWS4{secret}").as_bytes(), date)?;
    let k_region = hmac_bytes(&k_date, region)?;
    let k_service = hmac_bytes(&k_region, service)?;
    hmac_bytes(&k_service, TERMINATOR)
}

/// Equality whose time does not depend on where the inputs differ (a token is a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    const REGION: &str = "eu-west-1";
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const ORIGIN: &str = "http://127.0.0.1:4566";

    /// 2023-11-14T22:13:20Z: every test signs and verifies at a fixed instant.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn known() -> Vec<Credentials> {
        vec![
            Credentials { access_key_id: "AKIDOTHER".into(), secret_access_key: "other".into(), session_token: None },
            Credentials { access_key_id: AKID.into(), secret_access_key: SECRET.into(), session_token: None },
        ]
    }

    struct Signing<'a> {
        secret: &'a str,
        region: &'a str,
        service: &'a str,
        time: SystemTime,
        token: Option<&'a str>,
        settings: SigningSettings,
    }

    impl Default for Signing<'_> {
        fn default() -> Self {
            Signing {
                secret: SECRET,
                region: REGION,
                service: EXECUTE_API,
                time: at(),
                token: None,
                settings: SigningSettings::default(),
            }
        }
    }

    /// The request as the server receives it: the caller's headers, `host`, and what aws-sigv4
    /// adds (authorization, x-amz-date, x-amz-security-token…), signed as the SDK signs.
    fn signed(
        s: Signing<'_>,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::HeaderMap {
        let host = ORIGIN.trim_start_matches("http://");
        let mut to_sign: Vec<(&str, &str)> = headers.to_vec();
        to_sign.push(("host", host));
        let credentials =
            aws_credential_types::Credentials::new(AKID, s.secret, s.token.map(str::to_string), None, "test");
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(s.region)
            .name(s.service)
            .time(s.time)
            .settings(s.settings)
            .build()
            .unwrap();
        let url = format!("{ORIGIN}{path_and_query}");
        let request = SignableRequest::new(method, url, to_sign.iter().copied(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(request, &params.into()).unwrap().into_parts();
        let mut out = http::HeaderMap::new();
        for (name, value) in to_sign.iter().copied().chain(instructions.headers()) {
            out.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        out
    }

    fn check(method: &str, path_and_query: &str, headers: &http::HeaderMap, body: &[u8]) -> Result<Caller, Refusal> {
        verify(EXECUTE_API, method, path_and_query, headers, body, REGION, &known(), at())
    }

    /// `GET /live/status` with no body, checked at `now` (the clock-skew tests).
    fn check_status_at(headers: &http::HeaderMap, now: SystemTime) -> Result<Caller, Refusal> {
        verify(EXECUTE_API, "GET", "/live/status", headers, b"", REGION, &known(), now)
    }

    const JSON: &[u8] = br#"{"amount":1250,"currency":"EUR","card":"tok_4111"}"#;
    const JSON_HEADERS: &[(&str, &str)] =
        &[("content-type", "application/json"), ("x-amz-user-agent", "aws-sdk-rust/1.3")];

    fn accepted() -> Result<Caller, Refusal> {
        Ok(Caller { access_key_id: AKID.into() })
    }

    #[test]
    fn accepts_a_json_post_with_a_query_signed_as_the_sdk_signs() {
        let path = "/live/process?x=1&b=two%20words&a=&a=0&plus=1+2";
        let headers = signed(Signing::default(), "POST", path, JSON_HEADERS, JSON);
        assert_eq!(check("POST", path, &headers, JSON), accepted());
    }

    #[test]
    fn accepts_paths_that_need_encoding() {
        for path in [
            "/live/merchants/acme%20co/tx%3A1",
            "/live/cards/%E2%82%AC%2F42?q=%C3%A9t%C3%A9",
            "/live/x/a+b(c)!$'*,;=:@~",
            "/live//double/./dots/../x/",
            "/",
        ] {
            let headers = signed(Signing::default(), "GET", path, &[], b"");
            assert_eq!(check("GET", path, &headers, b""), accepted(), "{path}");
        }
    }

    #[test]
    fn accepts_a_session_token_and_a_signed_content_hash() {
        let settings = with_content_hash();
        let s = Signing { token: Some("FwoGZXIvYXdzEXAMPLE//token=="), settings, ..Default::default() };
        let headers = signed(s, "PUT", "/live/refunds/r-1", JSON_HEADERS, JSON);
        assert!(headers.contains_key("x-amz-security-token"));
        assert!(headers.contains_key("x-amz-content-sha256"));
        let temporary = [Credentials {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            session_token: Some("FwoGZXIvYXdzEXAMPLE//token==".into()),
        }];
        let got = verify(EXECUTE_API, "PUT", "/live/refunds/r-1", &headers, JSON, REGION, &temporary, at());
        assert_eq!(got, accepted());
        // The same request against a long-term key: a token it does not have is refused.
        assert_eq!(check("PUT", "/live/refunds/r-1", &headers, JSON), Err(Refusal::UnknownAccessKey));
    }

    #[test]
    fn ignores_headers_that_were_not_signed() {
        let mut headers = signed(Signing::default(), "POST", "/live/process", JSON_HEADERS, JSON);
        headers.insert("user-agent", "curl/8".parse().unwrap());
        headers.insert("x-amzn-trace-id", "Root=1-abc".parse().unwrap());
        assert_eq!(check("POST", "/live/process", &headers, JSON), accepted());
    }

    /// The S3-style x-amz-content-sha256 header, signed.
    fn with_content_hash() -> SigningSettings {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings
    }

    fn mismatch() -> Result<Caller, Refusal> {
        Err(Refusal::SignatureMismatch)
    }

    #[test]
    fn refuses_a_tampered_body() {
        let headers = signed(Signing::default(), "POST", "/live/process", JSON_HEADERS, JSON);
        let tampered = br#"{"amount":9250,"currency":"EUR","card":"tok_4111"}"#;
        assert_eq!(check("POST", "/live/process", &headers, tampered), mismatch());
        assert_eq!(check("POST", "/live/process", &headers, b""), mismatch());
    }

    #[test]
    fn refuses_a_body_swapped_under_a_signed_content_hash() {
        let settings = with_content_hash();
        let headers = signed(Signing { settings, ..Default::default() }, "POST", "/live/process", JSON_HEADERS, JSON);
        assert_eq!(check("POST", "/live/process", &headers, b"{}"), mismatch());
    }

    #[test]
    fn refuses_a_tampered_signed_header_method_path_or_query() {
        let path = "/live/process?x=1";
        let headers = signed(Signing::default(), "POST", path, JSON_HEADERS, JSON);
        let mut changed = headers.clone();
        changed.insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(check("POST", path, &changed, JSON), mismatch());
        let mut changed = headers.clone();
        changed.insert("host", "127.0.0.1:9999".parse().unwrap());
        assert_eq!(check("POST", path, &changed, JSON), mismatch());
        assert_eq!(check("PUT", path, &headers, JSON), mismatch());
        assert_eq!(check("POST", "/live/validate?x=1", &headers, JSON), mismatch());
        assert_eq!(check("POST", "/live/process?x=2", &headers, JSON), mismatch());
        assert_eq!(check("POST", "/live/process", &headers, JSON), mismatch());
    }

    #[test]
    fn refuses_a_wrong_secret() {
        let s = Signing { secret: "not-the-secret", ..Default::default() };
        let headers = signed(s, "POST", "/live/process", JSON_HEADERS, JSON);
        let refusal = check("POST", "/live/process", &headers, JSON).unwrap_err();
        assert_eq!(refusal, Refusal::SignatureMismatch);
        assert_eq!(refusal.status(), 403);
        assert_eq!(
            refusal.body(),
            serde_json::json!({"message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."})
        );
    }

    #[test]
    fn refuses_an_unknown_access_key() {
        let headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        let known =
            [Credentials { access_key_id: "AKIDOTHER".into(), secret_access_key: SECRET.into(), session_token: None }];
        let refusal = verify(EXECUTE_API, "GET", "/live/status", &headers, b"", REGION, &known, at()).unwrap_err();
        assert_eq!(refusal, Refusal::UnknownAccessKey);
        assert_eq!(refusal.status(), 403);
        assert_eq!(
            refusal.body(),
            serde_json::json!({"message": "The security token included in the request is invalid."})
        );
    }

    #[test]
    fn refuses_a_stale_or_future_date_and_accepts_five_minutes_of_skew() {
        let headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        let stale = check_status_at(&headers, at() + Duration::from_secs(301));
        let refusal = stale.unwrap_err();
        assert_eq!(refusal.status(), 403);
        assert_eq!(
            refusal.body(),
            serde_json::json!({"message": "Signature expired: 20231114T221320Z is now earlier than 20231114T221321Z (20231114T221821Z - 5 min.)"})
        );
        let future = check_status_at(&headers, at() - Duration::from_secs(301));
        assert_eq!(
            future.unwrap_err(),
            Refusal::SignatureExpired(
                "Signature not yet current: 20231114T221320Z is still later than 20231114T221319Z (20231114T220819Z + 5 min.)"
                    .into()
            )
        );
        for skew in [Duration::from_millis(300_999), Duration::ZERO] {
            assert_eq!(check_status_at(&headers, at() + skew), accepted());
        }
        assert_eq!(check_status_at(&headers, at() - Duration::from_secs(300)), accepted());
    }

    #[test]
    fn refuses_a_request_without_authorization() {
        let mut headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        headers.remove("authorization");
        let refusal = check("GET", "/live/status", &headers, b"").unwrap_err();
        assert_eq!(refusal, Refusal::MissingAuthenticationToken);
        assert_eq!(refusal.status(), 403);
        assert_eq!(refusal.body(), serde_json::json!({"message": "Missing Authentication Token"}));
        let presigned = "/live/status?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc";
        assert_eq!(check("GET", presigned, &http::HeaderMap::new(), b""), Err(Refusal::MissingAuthenticationToken));
    }

    fn with_authorization(value: &str) -> http::HeaderMap {
        let mut headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        headers.insert("authorization", value.parse().unwrap());
        headers
    }

    fn incomplete(value: &str) -> String {
        match check("GET", "/live/status", &with_authorization(value), b"") {
            Err(Refusal::IncompleteSignature(m)) => m,
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn refuses_a_malformed_authorization_without_echoing_it() {
        let signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let message = incomplete(&format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={signature}"));
        assert_eq!(message, "Authorization header requires 'Credential' parameter.");
        let message = incomplete("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/execute-api/aws4_request");
        assert_eq!(
            message,
            "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."
        );
        let bearer = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2VjcmV0";
        let message = incomplete(bearer);
        assert!(
            message.starts_with("Invalid key=value pair (missing equal-sign) in Authorization header"),
            "{message}"
        );
        assert!(!message.contains("eyJ"), "{message}");
        let message = incomplete(&format!(
            "AWS4-HMAC-SHA512 Credential=AKIDEXAMPLE/20231114/eu-west-1/execute-api/aws4_request, SignedHeaders=host, Signature={signature}"
        ));
        assert!(!message.contains(signature), "{message}");
        let message = incomplete(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114, SignedHeaders=host, Signature={signature}"
        ));
        assert!(message.starts_with("Credential must have exactly 5 slash-delimited elements"), "{message}");
        assert!(!message.contains(signature), "{message}");
    }

    #[test]
    fn refuses_a_request_without_a_date() {
        let mut headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        headers.remove("x-amz-date");
        assert_eq!(
            check("GET", "/live/status", &headers, b""),
            Err(Refusal::IncompleteSignature(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into()
            ))
        );
    }

    #[test]
    fn requires_host_to_be_signed() {
        let headers = signed(Signing::default(), "GET", "/live/status", &[], b"");
        let authorization = headers["authorization"].to_str().unwrap().replace("SignedHeaders=host;", "SignedHeaders=");
        let message = incomplete(&authorization);
        assert_eq!(message, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    }

    #[test]
    fn refuses_a_credential_scoped_to_another_region_or_service() {
        let s = Signing { region: "us-east-1", ..Default::default() };
        let headers = signed(s, "GET", "/live/status", &[], b"");
        assert_eq!(
            check("GET", "/live/status", &headers, b""),
            Err(Refusal::IncompleteSignature(
                "Credential should be scoped to a valid region, not 'us-east-1'. ".into()
            ))
        );
        let s = Signing { service: "lambda", ..Default::default() };
        let headers = signed(s, "GET", "/live/status", &[], b"");
        let refusal = check("GET", "/live/status", &headers, b"").unwrap_err();
        assert_eq!(refusal.status(), 403);
        assert_eq!(
            refusal.body(),
            serde_json::json!({"message": "Credential should be scoped to correct service: 'execute-api'. "})
        );
    }

    #[test]
    fn temporary_credentials_need_their_token() {
        let known = [Credentials {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            session_token: Some("FwoGZXIvYXdzEXAMPLE//token==".into()),
        }];
        let with = signed(
            Signing { token: Some("FwoGZXIvYXdzEXAMPLE//token=="), ..Default::default() },
            "GET",
            "/live/status",
            &[],
            b"",
        );
        assert_eq!(verify(EXECUTE_API, "GET", "/live/status", &with, b"", REGION, &known, at()), accepted());
        let without = signed(Signing::default(), "GET", "/live/status", &[], b"");
        assert_eq!(
            verify(EXECUTE_API, "GET", "/live/status", &without, b"", REGION, &known, at()),
            Err(Refusal::UnknownAccessKey)
        );
        let other =
            signed(Signing { token: Some("FwoGZXIvYXdzOTHER"), ..Default::default() }, "GET", "/live/status", &[], b"");
        assert_eq!(
            verify(EXECUTE_API, "GET", "/live/status", &other, b"", REGION, &known, at()),
            Err(Refusal::UnknownAccessKey)
        );
    }

    #[test]
    fn another_service_is_checked_with_its_own_scope() {
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Am/invocations";
        let lambda = signed(Signing { service: "lambda", ..Default::default() }, "POST", path, JSON_HEADERS, JSON);
        assert_eq!(verify("lambda", "POST", path, &lambda, JSON, REGION, &known(), at()), accepted());
        let api = signed(Signing::default(), "POST", path, JSON_HEADERS, JSON);
        assert_eq!(
            verify("lambda", "POST", path, &api, JSON, REGION, &known(), at()),
            Err(Refusal::IncompleteSignature("Credential should be scoped to correct service: 'lambda'. ".into()))
        );
    }

    #[test]
    fn canonical_parts_match_sigv4() {
        assert_eq!(canonical_uri("/a%20b/c d"), "/a%2520b/c%20d");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_query("b=2&a=1&a=0&c&x=%2a+y"), "a=0&a=1&b=2&c=&x=%2A%20y");
        assert_eq!(collapse_spaces("  a   b\t c  "), "a b\t c");
    }

    proptest! {
        #[test]
        fn whatever_the_sdk_signs_verifies_and_any_changed_byte_is_refused(
            raw in "(/[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,12}){1,4}",
            label in any::<String>(),
            body in proptest::collection::vec(any::<u8>(), 1..512),
            at_byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            // A label the way the SDK puts it in a path: percent-encoded once.
            let path = format!("{raw}/{}", utf8_percent_encode(&label, UNRESERVED));
            let headers = signed(Signing::default(), "POST", &path, JSON_HEADERS, &body);
            prop_assert_eq!(check("POST", &path, &headers, &body), accepted());
            let mut changed = body.clone();
            changed[at_byte.index(body.len())] ^= flip;
            prop_assert_eq!(check("POST", &path, &headers, &changed), mismatch());
        }
    }
}
