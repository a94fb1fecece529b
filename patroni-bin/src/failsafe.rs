//! Failsafe mode over HTTP: the primary's round of `POST /failsafe` to the other members while
//! the DCS is unreachable, and the members' answer (`rest::failsafe`). The rules are the core's
//! ([`patroni_core::failsafe`]); this is only the transport.

use std::time::Duration;

use patroni_core::{FailsafePost, FailsafeRound, Node};

use crate::config::Credentials;
use crate::ctl::api::{api_base, one_line};

/// How long one member may take to answer, as Patroni's 2 s.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts `node` as the leader to every member (name, REST API URL) in parallel; a member that
/// does not answer `200 Accepted` within [`ANSWER_TIMEOUT`] is listed as refused.
pub async fn confirm(
    http: &reqwest::Client,
    auth: Option<&Credentials>,
    node: &Node,
    members: &[(String, String)],
    started_at: u64,
) -> FailsafeRound {
    let post = FailsafePost {
        name: node.name.clone(),
        conn_url: node.conn_url.clone(),
        api_url: node.api_url.clone(),
    };
    let mut set = tokio::task::JoinSet::new();
    for (name, api_url) in members {
        let mut req = http
            .post(format!("{}/failsafe", api_base(api_url)))
            .timeout(ANSWER_TIMEOUT)
            .json(&post);
        if let Some(c) = auth {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let (name, url) = (name.clone(), api_url.clone());
        set.spawn(async move {
            let answer = async {
                let resp = req.send().await?;
                let status = resp.status();
                Ok::<_, reqwest::Error>((status, resp.text().await?))
            }
            .await;
            let verdict = match answer {
                Ok((s, body)) if s.is_success() && body.trim() == "Accepted" => Ok(()),
                Ok((s, body)) => Err(format!("{s}: {}", body.trim())),
                Err(e) => Err(one_line(&e)),
            };
            if let Err(why) = &verdict {
                tracing::warn!("Request failed to {name}: POST {url} failsafe ({why})");
            }
            (name, verdict)
        });
    }
    let mut refused = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(why))) => refused.push((name, why)),
            Err(e) => refused.push(("?".into(), format!("probe task failed: {e}"))),
        }
    }
    refused.sort();
    FailsafeRound {
        started_at,
        refused,
    }
}
