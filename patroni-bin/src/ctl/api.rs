//! Requests to the members' REST APIs, authenticated as Python's `patronictl` does
//! (`ctl.authentication`, else `restapi.authentication`).

use std::time::Duration;

use patroni_core::Member;
use reqwest::Method;
use serde_json::Value;

use super::CtlError;
use crate::config::Credentials;
use crate::status::PatroniStatus;

/// A member's answer: the status code and the body as text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// The HTTP client and the credentials for the members' APIs.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    auth: Option<Credentials>,
}

/// The REST base of an `api_url`: `http://h:8008/patroni` → `http://h:8008`.
pub fn api_base(api_url: &str) -> String {
    let (scheme, rest) = api_url.split_once("://").unwrap_or(("http", api_url));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

impl Api {
    /// Requests over `http` (an HTTPS client when the `ctl` section sets TLS) sending `auth` as
    /// basic authentication.
    pub fn new(auth: Option<Credentials>, http: reqwest::Client) -> Api {
        Api { http, auth }
    }

    /// `method /endpoint` on `member` with an optional JSON body, waiting at most `wait`.
    pub async fn call(
        &self,
        member: &Member,
        method: Method,
        endpoint: &str,
        body: Option<&Value>,
        wait: Duration,
    ) -> Result<Reply, CtlError> {
        if member.data.api_url.is_empty() {
            return Err(CtlError::Failed(format!(
                "member {} published no REST API URL",
                member.name
            )));
        }
        let url = format!("{}/{endpoint}", api_base(&member.data.api_url));
        let mut req = self.http.request(method, &url).timeout(wait);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.username, Some(&a.password));
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            member: member.name.clone(),
            message: one_line(&e),
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Reply { status, body })
    }

    /// `GET /patroni` of `member`, read as the status document every agent serves.
    pub async fn status(&self, member: &Member) -> Result<PatroniStatus, CtlError> {
        let r = self
            .call(member, Method::GET, "patroni", None, Duration::from_secs(5))
            .await?;
        PatroniStatus::from_json(&r.body).map_err(|e| CtlError::Unreachable {
            member: member.name.clone(),
            message: format!("GET /patroni answered {}: {e}", r.status),
        })
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(
            api_base("http://127.0.0.1:8008/patroni"),
            "http://127.0.0.1:8008"
        );
        assert_eq!(api_base("https://db1:8443/"), "https://db1:8443");
        assert_eq!(api_base("127.0.0.1:8008"), "http://127.0.0.1:8008");
    }
}
