//! Who may use the unsafe verbs (POST, PUT, PATCH, DELETE), as Patroni's `check_access`: the
//! client's address must be in `restapi.allowlist` (or be a member's REST host with
//! `allowlist_include_members`), and under HTTPS with `verify_client` it must have shown a
//! certificate; else 403. Also adds `http_extra_headers` (and under HTTPS `https_extra_headers`)
//! to every answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use ipnet::IpNet;

use super::limits::ConnHandle;
use super::text;
use super::tls::VerifyClient;
use crate::config::RestApiConfig;
use crate::state::Shared;

/// How long resolving one host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The access rules and extra headers of one REST server.
pub struct Access {
    /// `allowlist` resolved to networks.
    allowlist: Vec<IpNet>,
    /// Whether any address rule is configured (an allowlist whose names all failed to resolve
    /// admits nobody rather than everybody).
    restricted: bool,
    include_members: bool,
    cert_required: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    shared: Arc<Shared>,
}

/// The addresses `host` resolves to (none when it does not, with a log line).
async fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return vec![ip];
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip().to_canonical()).collect(),
        Ok(Err(e)) => {
            tracing::error!("Failed to resolve {host}: {e}");
            Vec::new()
        }
        Err(_) => {
            tracing::error!("Failed to resolve {host}: timed out");
            Vec::new()
        }
    }
}

/// The host and port of a member's `api_url` (`https://h:8008/patroni` → `h`, 8008).
fn url_host(url: &str) -> Option<(String, u16)> {
    let default = if url.starts_with("https://") { 443 } else { 80 };
    patroni_core::Endpoint::from_url(url, default)
        .ok()
        .map(|e| (e.host, e.port))
}

impl Access {
    /// The rules `restapi` asks for; host names in the allowlist are resolved now, as Patroni
    /// does when it (re)loads its configuration. `tls` says whether the server speaks HTTPS.
    pub async fn new(restapi: &RestApiConfig, tls: bool, shared: Arc<Shared>) -> Access {
        let mut allowlist = Vec::new();
        for entry in &restapi.allowlist {
            if entry.contains('/') {
                match entry.parse::<IpNet>() {
                    Ok(n) => allowlist.push(n),
                    Err(e) => tracing::error!("Invalid value \"{entry}\" in the allowlist: {e}"),
                }
            } else {
                allowlist.extend(resolve(entry, 8080).await.into_iter().map(IpNet::from));
            }
        }
        let mut headers = Vec::new();
        let extra = restapi
            .http_extra_headers
            .iter()
            .chain(restapi.https_extra_headers.iter().filter(|_| tls));
        for (name, value) in extra {
            match (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => tracing::error!("restapi: invalid extra header {name}: {value} ignored"),
            }
        }
        Access {
            allowlist,
            restricted: !restapi.allowlist.is_empty(),
            include_members: restapi.allowlist_include_members,
            cert_required: tls
                && matches!(
                    restapi.verify_client,
                    Some(VerifyClient::Optional | VerifyClient::Required)
                ),
            headers,
            shared,
        }
    }

    /// The members' REST hosts from the last cluster view, resolved.
    async fn member_ips(&self) -> Vec<IpAddr> {
        let urls: Vec<String> = {
            let snap = self
                .shared
                .snapshot
                .read()
                .unwrap_or_else(|p| p.into_inner());
            snap.cluster
                .iter()
                .flat_map(|c| c.members.iter())
                .map(|m| m.data.api_url.clone())
                .collect()
        };
        let mut ips = Vec::new();
        for (host, port) in urls.iter().filter_map(|u| url_host(u)) {
            ips.extend(resolve(&host, port).await);
        }
        ips
    }

    /// `Err` is the 403 to send when `conn` may not use an unsafe verb.
    async fn check(&self, conn: Option<&ConnHandle>) -> Result<(), Response> {
        if self.restricted || self.include_members {
            let ip = conn.map(|c| c.remote.ip().to_canonical());
            let mut ok = ip.is_some_and(|ip| self.allowlist.iter().any(|n| n.contains(&ip)));
            if !ok && self.include_members {
                if let Some(ip) = ip {
                    ok = self.member_ips().await.contains(&ip);
                }
            }
            if !ok {
                return Err(text(StatusCode::FORBIDDEN, "Access is denied"));
            }
        }
        if self.cert_required && !conn.is_some_and(|c| c.client_cert) {
            return Err(text(StatusCode::FORBIDDEN, "client certificate required"));
        }
        Ok(())
    }

    /// `router` with these rules on its unsafe verbs and the extra headers on every answer.
    pub fn wrap(self: Arc<Self>, router: Router) -> Router {
        router
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self),
                check_access,
            ))
            .layer(axum::middleware::map_response_with_state(
                self,
                extra_headers,
            ))
    }
}

async fn check_access(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        let conn = req
            .extensions()
            .get::<ConnectInfo<ConnHandle>>()
            .map(|c| &c.0);
        if let Err(refused) = access.check(conn).await {
            return refused;
        }
    }
    next.run(req).await
}

async fn extra_headers(State(access): State<Arc<Access>>, mut res: Response) -> Response {
    for (name, value) in &access.headers {
        res.headers_mut().append(name.clone(), value.clone());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn member_hosts() {
        assert_eq!(
            url_host("https://10.0.0.2:8008/patroni"),
            Some(("10.0.0.2".into(), 8008))
        );
        assert_eq!(url_host("http://db1/patroni"), Some(("db1".into(), 80)));
        assert_eq!(url_host("https://db1"), Some(("db1".into(), 443)));
        assert_eq!(
            url_host("http://[::1]:8008/patroni"),
            Some(("::1".into(), 8008))
        );
        assert_eq!(url_host("db1:8008"), None);
    }
}
