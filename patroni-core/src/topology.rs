//! Whom each member streams WAL from: the leader, a `replicatefrom` member, or nobody (`nostream`).
//!
//! One rule for the follower (where to point `primary_conninfo`), the slot keeper (which member
//! keeps whose slot) and the simulator, so they never disagree about the replication tree.

use crate::{Cluster, MemberState, Tags};

/// The member `name` (tagged `tags`) streams from in `cluster`, by name; `None` when it streams
/// from nobody: it is tagged `nostream`, holds the lock itself, or nobody does.
///
/// A `replicatefrom` chain is walked hop by hop. It is used when it ends at the leader or at a
/// member that streams from the leader (no `replicatefrom`, or one naming a member that cannot
/// serve, which falls back to the leader itself). A member cannot serve when it is gone,
/// unreadable, not running or tagged `nostream` (it has no stream to pass on, only what the
/// archive gave it). A first hop that cannot serve, and any chain that comes back to a member
/// already on it (a loop, including one through `name`), fall back to the leader: a cascade
/// never leaves a standby without a streaming path to the primary's WAL.
pub fn upstream_name<'a>(cluster: &'a Cluster, name: &str, tags: &Tags) -> Option<&'a str> {
    if tags.nostream {
        return None;
    }
    let leader = cluster
        .leader
        .as_ref()
        .map(|l| l.name.as_str())
        .filter(|l| !l.eq_ignore_ascii_case(name))?;
    let mut seen: Vec<&str> = vec![name];
    let mut first: Option<&'a str> = None;
    let mut hop = tags.replicatefrom.as_deref();
    while let Some(next) = hop {
        if next.eq_ignore_ascii_case(leader) {
            break;
        }
        if seen.iter().any(|s| s.eq_ignore_ascii_case(next)) {
            // A loop: nobody on it reaches the leader through it.
            return Some(leader);
        }
        let Some(m) = cluster.member(next).filter(|m| {
            m.unreadable.is_none() && m.data.state == MemberState::Running && !m.data.tags.nostream
        }) else {
            // The member before this hop falls back to the leader: the chain ends there.
            break;
        };
        let m_name = m.name.as_str();
        first.get_or_insert(m_name);
        seen.push(m_name);
        hop = m.data.tags.replicatefrom.as_deref();
    }
    Some(first.unwrap_or(leader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Leader, Member, MemberData};

    fn member(name: &str, state: MemberState, tags: Tags) -> Member {
        Member::new(
            name,
            MemberData {
                conn_url: format!("postgres://{name}:5432/postgres"),
                state,
                tags,
                ..MemberData::default()
            },
        )
    }

    fn from(name: &str) -> Tags {
        Tags {
            replicatefrom: Some(name.to_string()),
            ..Tags::default()
        }
    }

    fn cluster(members: Vec<Member>) -> Cluster {
        Cluster {
            leader: Some(Leader {
                name: "a".into(),
                version: 1,
            }),
            members,
            ..Cluster::default()
        }
    }

    fn up<'a>(c: &'a Cluster, name: &str) -> Option<&'a str> {
        let m = c.member(name).expect("member");
        upstream_name(c, name, &m.data.tags)
    }

    #[test]
    fn cascade_and_fallbacks() {
        let run = MemberState::Running;
        let c = cluster(vec![
            member("a", run, Tags::default()),
            member("b", run, Tags::default()),
            member("c", run, from("b")),
            member("d", run, from("c")),
            member("e", MemberState::Stopped, Tags::default()),
            member("f", run, from("e")),
            member("g", run, from("gone")),
            member("h", run, from("f")),
            member("x", run, from("y")),
            member("y", run, from("x")),
            member("z", run, from("x")),
            member("s", run, from("s")),
            member("l", run, from("a")),
        ]);
        assert_eq!(up(&c, "a"), None, "the leader streams from nobody");
        assert_eq!(up(&c, "b"), Some("a"));
        assert_eq!(up(&c, "c"), Some("b"));
        assert_eq!(up(&c, "d"), Some("c"), "a chain of two cascades");
        assert_eq!(up(&c, "f"), Some("a"), "a stopped member is skipped");
        assert_eq!(up(&c, "g"), Some("a"), "a missing member is skipped");
        assert_eq!(up(&c, "h"), Some("f"), "f itself falls back to the leader");
        assert_eq!(up(&c, "x"), Some("a"), "a loop falls back");
        assert_eq!(up(&c, "y"), Some("a"), "a loop falls back");
        assert_eq!(up(&c, "z"), Some("a"), "a chain into a loop falls back");
        assert_eq!(up(&c, "s"), Some("a"), "naming oneself falls back");
        assert_eq!(
            up(&c, "l"),
            Some("a"),
            "naming the leader is streaming from it"
        );
    }

    #[test]
    fn nostream_streams_from_nobody_and_serves_nobody() {
        let run = MemberState::Running;
        let quiet = Tags {
            nostream: true,
            ..from("b")
        };
        let c = cluster(vec![
            member("a", run, Tags::default()),
            member("b", run, Tags::default()),
            member("n", run, quiet),
            member("m", run, from("n")),
        ]);
        assert_eq!(up(&c, "n"), None);
        assert_eq!(up(&c, "m"), Some("a"));
    }

    #[test]
    fn no_leader_means_no_upstream() {
        let c = Cluster {
            members: vec![member("b", MemberState::Running, from("c"))],
            ..Cluster::default()
        };
        assert_eq!(up(&c, "b"), None);
    }
}
