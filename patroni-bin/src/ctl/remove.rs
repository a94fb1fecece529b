//! `remove CLUSTER`: deletes the cluster's keys from the DCS after Python's typed confirmations.

use super::{failed, CtlError, Format, Session};

/// What the operator must type to confirm.
pub const AWARE: &str = "Yes I am aware";

/// `remove CLUSTER [-f FMT]`: the cluster name, then "Yes I am aware", then (while a leader
/// holds the lock) the leader's name; read from stdin even when it is not a terminal.
pub async fn remove(s: &mut Session, name: &str, fmt: Format) -> Result<(), CtlError> {
    let (dcs, cluster) = s.load(name).await?;
    s.show_members(&cluster, name, fmt);
    let typed = s
        .term
        .ask("Please confirm the cluster name to remove", None)?;
    if typed != name {
        return Err(failed("Cluster names specified do not match"));
    }
    let typed = s.term.ask(
        &format!(
            "You are about to remove all information in DCS for {name}, please type: \"{AWARE}\""
        ),
        None,
    )?;
    if typed != AWARE {
        return Err(failed(format!("You did not exactly type \"{AWARE}\"")));
    }
    if let Some(leader) = cluster.leader.as_ref().filter(|l| !l.name.is_empty()) {
        let typed = s.term.ask(
            "This cluster currently is healthy. Please specify the leader name to continue",
            None,
        )?;
        if typed != leader.name {
            return Err(failed(
                "You did not specify the current leader of the cluster",
            ));
        }
    }
    dcs.delete_cluster().await?;
    Ok(())
}
