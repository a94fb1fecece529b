//! Golden decision tables: readable cases in `src/ha/<module>.golden`, beside the module whose
//! branches they cover, each an observation summary and the exact actions and message
//! `Ha::step` must produce (raft-rs style tables, openraft style exact command lists). The format
//! is described in `src/ha/golden.md`.
//!
//! `PATRONI_GOLDEN_REWRITE=1 cargo test -p patroni-core --test golden` writes the actual
//! `expect`, `message` and `ineligible` lines into the files instead of failing; review the diff.

use std::fmt::Write as _;
use std::path::Path;

use patroni_core::{
    Action, ActionKind, CannotFollow, CannotFollowReason, Cluster, ClusterStatus, DataDirState,
    DbRole, DcsView, Decision, DynamicConfig, FailoverRequest, Ha, HistoryEntry, Leader, LocalDb,
    LocalRequest, Lsn, Member, MemberData, MemberRole, MemberState, Node, Observation, Outcome,
    OutcomeResult, PeerStatus, ProcessState, ReceiverStatus, ReplicationRow, RunningTask,
    StartRole, SyncState, SynchronousMode, Tags, Timestamp, Versioned,
};

/// One parsed case.
struct Case {
    name: String,
    file: String,
    node: Node,
    obs: Observation,
    priors: Vec<u64>,
    expect: Option<String>,
    message: Option<String>,
    ineligible: Option<String>,
}

fn lsn(s: &str) -> Lsn {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn kv(word: &str) -> Option<(&str, &str)> {
    word.split_once('=')
}

fn apply_tags(tags: &mut Tags, word: &str) -> bool {
    match kv(word) {
        Some(("prio", v)) => tags.failover_priority = v.parse().unwrap(),
        Some(("replicatefrom", v)) => tags.replicatefrom = Some(v.to_string()),
        None if word == "nofailover" => tags.nofailover = true,
        None if word == "nosync" => tags.nosync = true,
        None if word == "clonefrom" => tags.clonefrom = true,
        _ => return false,
    }
    true
}

fn apply_config(c: &mut DynamicConfig, word: &str) {
    match kv(word) {
        Some(("ttl", v)) => c.ttl = v.parse().unwrap(),
        Some(("loop_wait", v)) => c.loop_wait = v.parse().unwrap(),
        Some(("retry_timeout", v)) => c.retry_timeout = v.parse().unwrap(),
        Some(("primary_start_timeout", v)) => c.primary_start_timeout = v.parse().unwrap(),
        Some(("max_lag", v)) => c.maximum_lag_on_failover = v.parse().unwrap(),
        Some(("sync_count", v)) => c.synchronous_node_count = v.parse().unwrap(),
        Some(("max_history", v)) => c.max_timelines_history = v.parse().unwrap(),
        Some(("race_backoff", v)) => c.primary_race_backoff = v.parse().unwrap(),
        None if word == "pause" => c.pause = true,
        None if word == "sync" => c.synchronous_mode = SynchronousMode::On,
        None if word == "strict" => c.synchronous_mode_strict = true,
        None if word == "check_timeline" => c.check_timeline = true,
        _ => panic!("unknown config word {word:?}"),
    }
}

fn member_state(w: &str) -> Option<MemberState> {
    Some(match w {
        "running" => MemberState::Running,
        "starting" => MemberState::Starting,
        "stopped" => MemberState::Stopped,
        "crashed" => MemberState::Crashed,
        _ => return None,
    })
}

fn member_role(w: &str) -> Option<MemberRole> {
    Some(match w {
        "primary" => MemberRole::Primary,
        "replica" => MemberRole::Replica,
        "demoted" => MemberRole::Demoted,
        _ => return None,
    })
}

fn kind(w: &str) -> ActionKind {
    use ActionKind::*;
    match w {
        "TakeInitialize" => TakeInitialize,
        "AcquireLeader" => AcquireLeader,
        "RenewLeader" => RenewLeader,
        "ReleaseLeader" => ReleaseLeader,
        "PublishMember" => PublishMember,
        "Follow" => Follow,
        "Bootstrap" => Bootstrap,
        "CloneFrom" => CloneFrom,
        "Start" => Start,
        "Stop" => Stop,
        "Restart" => Restart,
        "Promote" => Promote,
        "Demote" => Demote,
        "Rebuild" => Rebuild,
        "SetSyncStandbys" => SetSyncStandbys,
        "WriteSyncState" => WriteSyncState,
        _ => panic!("unknown action kind {w:?}"),
    }
}

fn default_obs() -> Observation {
    Observation::quiet(
        100_000,
        "2026-11-26T10:00:00Z".parse().unwrap(),
        DcsView::Ok(Cluster {
            initialize: Some("7000".into()),
            config: Some(Versioned {
                version: 1,
                value: DynamicConfig::default(),
            }),
            ..Cluster::default()
        }),
        LocalDb {
            data_dir: DataDirState::Initialized,
            system_id: Some("7000".into()),
            timeline: Some(1),
            ..LocalDb::default()
        },
    )
}

fn parse_line(case: &mut Case, line: &str) {
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    let words: Vec<&str> = rest.split_whitespace().collect();
    let obs = &mut case.obs;
    let cluster = match &mut obs.dcs {
        DcsView::Ok(c) => Some(c),
        DcsView::Unreachable(_) => None,
    };
    match head {
        "node" => {
            case.node = Node::new(words[0]);
            for w in &words[1..] {
                if *w == "nobootstrap" {
                    case.node.can_bootstrap = false;
                } else if *w == "watchdog=required" {
                    case.node.watchdog_required = true;
                } else if *w == "norewind" {
                    case.node.rewind_tool = None;
                } else if let Some(tool) = w.strip_prefix("rewind=") {
                    case.node.rewind_tool = Some(tool.replace('+', " "));
                } else if !apply_tags(&mut case.node.tags, w) {
                    panic!("unknown node word {w:?}");
                }
            }
        }
        "config" => {
            let c = cluster.expect("config needs a DCS view");
            let cfg = c.config.as_mut().expect("config absent");
            for w in words {
                apply_config(&mut cfg.value, w);
            }
        }
        "bootstrap_config" => {
            for w in words {
                apply_config(&mut case.node.bootstrap_config, w);
            }
        }
        "noconfig" => cluster.unwrap().config = None,
        "init" => cluster.unwrap().initialize = Some(rest.trim().trim_matches('"').to_string()),
        "noinit" => cluster.unwrap().initialize = None,
        "config_unreadable" => {
            let c = cluster.unwrap();
            c.config = None;
            c.config_unreadable = Some(Versioned {
                version: 1,
                value: "the key is empty".into(),
            });
        }
        "failover_unreadable" => {
            cluster.unwrap().failover_unreadable = Some(Versioned {
                version: 9,
                value: "failover key is not a failover request".into(),
            });
        }
        "leader" => {
            cluster.unwrap().leader = Some(Leader {
                name: words[0].into(),
                version: 3,
            })
        }
        "member" => {
            let name = words[0];
            let mut data = MemberData {
                conn_url: format!("postgres://{name}:5432/postgres"),
                api_url: format!("http://{name}:8008/patroni"),
                ..MemberData::default()
            };
            let mut unreadable = None;
            for w in &words[1..] {
                if let Some(r) = member_role(w) {
                    data.role = r;
                } else if let Some(s) = member_state(w) {
                    data.state = s;
                } else if apply_tags(&mut data.tags, w) {
                } else if *w == "noapi" {
                    data.api_url.clear();
                } else if *w == "unreadable" {
                    unreadable = Some("member key is not valid member JSON".to_string());
                } else {
                    match kv(w) {
                        Some(("lsn", v)) => data.xlog_location = Some(lsn(v)),
                        Some(("tl", v)) => data.timeline = Some(v.parse().unwrap()),
                        Some(("addr", v)) => data.conn_url = format!("postgres://{v}/postgres"),
                        _ => panic!("unknown member word {w:?}"),
                    }
                }
            }
            let c = cluster.unwrap();
            c.members.push(Member {
                name: name.into(),
                version: 2,
                data,
                unreadable,
            });
            c.members.sort_by(|a, b| a.name.cmp(&b.name));
        }
        "status" => {
            cluster.unwrap().status = Some(ClusterStatus {
                optime: Some(lsn(words[0])),
                ..ClusterStatus::default()
            })
        }
        "sync" => {
            let (leader, standbys) = words[0].split_once(':').unwrap_or((words[0], ""));
            let version = words
                .get(1)
                .and_then(|w| w.strip_prefix("v="))
                .map_or(5, |v| v.parse().unwrap());
            cluster.unwrap().sync = Some(Versioned {
                version,
                value: SyncState {
                    leader: Some(leader.into()),
                    sync_standbys: standbys
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                    quorum: None,
                },
            });
        }
        "failover" => {
            let mut req = FailoverRequest::default();
            let mut version = 7;
            for w in words {
                match kv(w) {
                    Some(("leader", v)) => req.leader = Some(v.into()),
                    Some(("member", v)) => req.candidate = Some(v.into()),
                    Some(("at", v)) => req.scheduled_at = Some(v.parse().unwrap()),
                    Some(("v", v)) => version = v.parse().unwrap(),
                    _ => panic!("unknown failover word {w:?}"),
                }
            }
            cluster.unwrap().failover = Some(Versioned {
                version,
                value: req,
            });
        }
        "history" => {
            cluster.unwrap().history = words
                .iter()
                .map(|t| HistoryEntry {
                    timeline: t.parse().unwrap(),
                    lsn: Lsn(0x100_0000),
                    reason: "no recovery target specified".into(),
                    timestamp: None,
                    new_leader: None,
                })
                .collect()
        }
        "local" => {
            let l = &mut obs.local;
            for w in words {
                match w {
                    "running" => l.process = ProcessState::Running,
                    "starting" => l.process = ProcessState::Starting,
                    "stopped" => l.process = ProcessState::Stopped,
                    "crashed" => l.process = ProcessState::Crashed,
                    "primary" => l.role = DbRole::Primary,
                    "standby" => l.role = DbRole::Standby,
                    "empty" => {
                        l.data_dir = DataDirState::Empty;
                        l.system_id = None;
                        l.timeline = None;
                    }
                    "unreadable" => {
                        l.data_dir = DataDirState::Unreadable("permission denied".into())
                    }
                    "pending_restart" => l.pending_restart = true,
                    _ => match kv(w) {
                        Some(("write", v)) => l.write_lsn = Some(lsn(v)),
                        Some(("recv", v)) => l.receive_lsn = Some(lsn(v)),
                        Some(("replay", v)) => l.replay_lsn = Some(lsn(v)),
                        Some(("tl", v)) => l.timeline = Some(v.parse().unwrap()),
                        Some(("sysid", v)) => l.system_id = Some(v.into()),
                        Some(("stream", v)) => {
                            let (host, port) = match v.rsplit_once(':') {
                                Some((h, p)) => (h, Some(p.parse().unwrap())),
                                None => (v, Some(5432)),
                            };
                            l.receiver = Some(ReceiverStatus {
                                streaming: v != "-",
                                upstream_host: Some(host.to_string()).filter(|h| h != "-"),
                                upstream_port: port.filter(|_| v != "-"),
                            })
                        }
                        Some(("cannot", v)) => {
                            let reason = match v {
                                "diverged" => CannotFollowReason::Diverged,
                                "walremoved" => CannotFollowReason::WalRemoved,
                                "timeline" => CannotFollowReason::TimelineMismatch,
                                "sysid" => CannotFollowReason::SystemIdMismatch,
                                _ => CannotFollowReason::Other,
                            };
                            l.cannot_follow = Some(CannotFollow {
                                reason,
                                detail: format!("{v} history"),
                            })
                        }
                        _ => panic!("unknown local word {w:?}"),
                    },
                }
            }
        }
        "repl" => obs.local.replication.push(ReplicationRow {
            application_name: words[0].into(),
            state: words[1].into(),
            sync_state: words[2].into(),
            flush_lsn: Some(lsn(words[3])),
            replay_lsn: Some(lsn(words[3])),
        }),
        "outcome" => {
            let result = match words[1] {
                "Done" => OutcomeResult::Done,
                "Lost" => OutcomeResult::Lost,
                "Unreachable" => OutcomeResult::DcsUnreachable("timeout".into()),
                "Failed" => OutcomeResult::Failed("exit status 1".into()),
                "Skipped" => OutcomeResult::Skipped,
                w => panic!("unknown outcome {w:?}"),
            };
            obs.outcomes.push(Outcome {
                kind: kind(words[0]),
                result,
                started_at: words[2].parse().unwrap(),
            });
        }
        "peer" => {
            let mut p = PeerStatus::unreachable(words[0], obs.now);
            p.reachable = true;
            for w in &words[1..] {
                if let Some(r) = member_role(w) {
                    p.role = r;
                } else if let Some(s) = member_state(w) {
                    p.state = s;
                } else {
                    match (kv(w), *w) {
                        (_, "unreachable") => p.reachable = false,
                        (_, "nofailover") => p.tags.nofailover = true,
                        (_, "watchdog_failed") => p.watchdog_failed = true,
                        (Some(("tl", v)), _) => p.timeline = Some(v.parse().unwrap()),
                        (Some(("prio", v)), _) => p.tags.failover_priority = v.parse().unwrap(),
                        (Some(("at", v)), _) => p.fetched_at = v.parse().unwrap(),
                        (Some(("lsn", v)), _) => p.wal_position = lsn(v),
                        _ => panic!("unknown peer word {w:?}"),
                    }
                }
            }
            obs.peers.get_or_insert_with(Vec::new).push(p);
        }
        "nopeers" => obs.peers = Some(Vec::new()),
        "task" => {
            obs.task = Some(RunningTask {
                kind: kind(words[0]),
                since: words[1].parse().unwrap(),
            })
        }
        "request" => obs.requests.push(match words[0] {
            "restart" => LocalRequest::Restart { timeout: None },
            "reinit" => LocalRequest::Reinitialize {
                force: words.get(1) == Some(&"force"),
            },
            w => panic!("unknown request {w:?}"),
        }),
        "now" => {
            obs.now = words[0].parse().unwrap();
            if let Some(ps) = obs.peers.as_mut() {
                for p in ps {
                    p.fetched_at = obs.now;
                }
            }
        }
        "wall" => obs.wall_clock = words[0].parse::<Timestamp>().unwrap(),
        "watchdog" => {
            assert_eq!(words, ["failed"]);
            obs.watchdog_ready = false;
        }
        "dcs" => {
            assert_eq!(words, ["down"]);
            obs.dcs = DcsView::Unreachable("connection refused".into());
        }
        "prior" => case.priors = words.iter().map(|w| w.parse().unwrap()).collect(),
        "expect" => case.expect = Some(rest.trim().to_string()),
        "message" => case.message = Some(rest.trim().to_string()),
        "ineligible" => case.ineligible = Some(rest.trim().to_string()),
        _ => panic!("unknown line {line:?}"),
    }
}

fn parse_file(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let mut cases = Vec::new();
    for block in text.split("\n=== ").skip(1) {
        let mut lines = block.lines();
        let name = lines.next().unwrap().trim().to_string();
        let mut case = Case {
            name,
            file: file.clone(),
            node: Node::new("n1"),
            obs: default_obs(),
            priors: Vec::new(),
            expect: None,
            message: None,
            ineligible: None,
        };
        for line in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            parse_line(&mut case, line);
        }
        cases.push(case);
    }
    cases
}

/// The compact form of an action used in the tables.
fn compact(a: &Action) -> String {
    let names = |v: &[String]| v.join(",");
    match a {
        Action::SetInitialize { system_id } => format!("SetInitialize({system_id})"),
        Action::WriteStatus { optime } => format!("WriteStatus({optime})"),
        Action::ClearFailover { version } => format!("ClearFailover({version})"),
        Action::WriteSyncState { state, version } => format!(
            "WriteSyncState({}:{}@{})",
            state.leader.as_deref().unwrap_or("-"),
            names(&state.sync_standbys),
            version.map_or("new".to_string(), |v| v.to_string())
        ),
        Action::WriteHistory(h) => format!(
            "WriteHistory({})",
            h.iter()
                .map(|e| e.timeline.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Action::FetchPeerStatus { members } => format!("FetchPeerStatus({})", names(members)),
        Action::CloneFrom { source } => format!("CloneFrom({})", source.name),
        Action::Start(StartRole::Primary) => "Start(Primary)".into(),
        Action::Start(StartRole::Standby { upstream }) => format!(
            "Start(Standby({}))",
            upstream.as_ref().map_or("-", |m| m.name.as_str())
        ),
        Action::Stop(m) => format!("Stop({m:?})"),
        Action::Promote { timeline, planned } => {
            if *planned {
                format!("Promote({timeline},planned)")
            } else {
                format!("Promote({timeline})")
            }
        }
        Action::Demote(m) => format!("Demote({m:?})"),
        Action::Follow { leader } => format!("Follow({})", leader.name),
        Action::Rebuild {
            source,
            mode,
            timeline,
        } => format!("Rebuild({},{mode:?},{timeline})", source.name),
        Action::SetSyncStandbys {
            names: n,
            count,
            quorum,
        } => {
            let any = if *quorum { "ANY " } else { "" };
            format!("SetSyncStandbys({any}{count}:{})", names(n))
        }
        other => format!("{:?}", other.kind()),
    }
}

fn render(d: &Decision) -> String {
    d.actions.iter().map(compact).collect::<Vec<_>>().join(", ")
}

fn render_ineligible(d: &Decision) -> String {
    d.ineligible
        .iter()
        .map(|(n, r)| format!("{n}: {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn run(case: &Case) -> Decision {
    let mut ha = Ha::new(case.node.clone());
    for &t in &case.priors {
        let mut prior = case.obs.clone();
        prior.now = t;
        prior.outcomes.clear();
        ha.step(&prior);
    }
    ha.step(&case.obs)
}

/// The directory the golden files live in, beside the modules they test.
fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ha")
}

/// Whether expected output is rewritten from the actual decisions instead of checked.
fn rewriting() -> bool {
    std::env::var_os("PATRONI_GOLDEN_REWRITE").is_some_and(|v| v != "0" && !v.is_empty())
}

/// What a case's `expect`, `message` and `ineligible` lines say of a decision.
struct Actual {
    expect: String,
    message: String,
    ineligible: String,
}

fn actual(d: &Decision) -> Actual {
    let actions = render(d);
    Actual {
        expect: if actions.is_empty() {
            "-".into()
        } else {
            actions
        },
        message: d.reason.to_string(),
        ineligible: render_ineligible(d),
    }
}

/// Replaces the `expect`, `message` and `ineligible` lines of each case in `text` with what the
/// decisions say (cases in file order); every other line stays as it is.
fn rewrite(text: &str, actual: &[Actual]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut case: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        if line.starts_with("=== ") {
            case = Some(case.map_or(0, |c| c + 1));
        }
        let word = line.split_whitespace().next().unwrap_or("");
        let indent = &line[..line.len() - line.trim_start().len()];
        let eol = if line.ends_with('\n') { "\n" } else { "" };
        match (case.and_then(|c| actual.get(c)), word) {
            (Some(a), "expect") => out.push_str(&format!("{indent}expect {}{eol}", a.expect)),
            (Some(a), "message") => out.push_str(&format!("{indent}message {}{eol}", a.message)),
            (Some(a), "ineligible") => {
                out.push_str(&format!("{indent}ineligible {}{eol}", a.ineligible))
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Runs the cases of one module's golden file: checks them, or rewrites the expected output.
fn check_module(module: &str) {
    let path = golden_dir().join(format!("{module}.golden"));
    assert!(
        golden_dir().join(format!("{module}.rs")).exists(),
        "{} is not beside a module",
        path.display()
    );
    let cases = parse_file(&path);
    assert!(!cases.is_empty(), "{} has no cases", path.display());
    if rewriting() {
        let actual: Vec<Actual> = cases.iter().map(|c| actual(&run(c))).collect();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, rewrite(&text, &actual)).unwrap();
        eprintln!("rewrote {} ({} cases)", path.display(), cases.len());
        return;
    }
    let mut failures = String::new();
    for case in &cases {
        let expect = case
            .expect
            .as_deref()
            .unwrap_or_else(|| panic!("{}: {} has no expect line", case.file, case.name));
        let message = case
            .message
            .as_deref()
            .unwrap_or_else(|| panic!("{}: {} has no message line", case.file, case.name));
        let got = actual(&run(case));
        let mut ok = got.expect == expect && got.message == message;
        if let Some(inel) = &case.ineligible {
            ok &= got.ineligible == *inel;
        }
        if !ok {
            let _ = writeln!(
                failures,
                "\n--- {} / {}\n  expected: {expect}\n            {message}\n  actual:   {}\n            {}\n  ineligible: {}",
                case.file, case.name, got.expect, got.message, got.ineligible,
            );
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases failed (PATRONI_GOLDEN_REWRITE=1 rewrites them):{failures}"
    );
}

/// One test per module with a golden file.
macro_rules! golden_modules {
    ($($module:ident),* $(,)?) => {
        $(
            #[test]
            fn $module() {
                check_module(stringify!($module).trim_start_matches("r#"));
            }
        )*

        /// Every golden file in `src/ha` is run by a test above: a new one is not silently skipped.
        #[test]
        fn every_golden_file_has_a_test() {
            let mut found: Vec<String> = std::fs::read_dir(golden_dir())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "golden"))
                .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
                .collect();
            found.sort();
            let mut tested = vec![$(stringify!($module).trim_start_matches("r#").to_string()),*];
            tested.sort();
            assert_eq!(found, tested);
        }
    };
}

golden_modules!(bootstrap, follower, leader, lease, r#mod, race, recover, switchover, sync);
