//! Simulator throughput: simulated cluster-seconds per wall-clock second for a 3-node cluster
//! under faults (target: at least 10,000).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

use patroni_core::instant::millis;
use patroni_core::sim::{simulate, Fault, FaultSchedule, SimConfig};

fn faults() -> FaultSchedule {
    FaultSchedule::none()
        .at(
            10_000,
            Fault::CrashDb {
                node: 0,
                restartable: true,
            },
        )
        .at(
            40_000,
            Fault::CutDcs {
                node: 1,
                lasting: Duration::from_millis(25_000),
            },
        )
        .at(
            90_000,
            Fault::Stall {
                node: 2,
                lasting: Duration::from_millis(20_000),
            },
        )
        .at(
            130_000,
            Fault::CutPeers {
                a: 0,
                b: 2,
                lasting: Duration::from_millis(30_000),
            },
        )
        .at(170_000, Fault::Switchover { candidate: None })
        .at(200_000, Fault::LoseNode { node: 1 })
}

fn bench(c: &mut Criterion) {
    let cfg = SimConfig {
        trace: false,
        ..SimConfig::three_nodes(7)
    };
    let schedule = faults();
    let simulated_ms = millis(simulate(&cfg, &schedule).simulated);
    let mut group = c.benchmark_group("sim");
    // Throughput in "elements" = simulated milliseconds: criterion reports elements/s, so
    // cluster-seconds per second is that figure divided by 1000.
    group.throughput(Throughput::Elements(simulated_ms));
    group.bench_function("three_nodes_under_faults", |b| {
        b.iter(|| simulate(&cfg, &schedule))
    });
    group.finish();
    let runs = 20;
    let started = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(simulate(&cfg, &schedule));
    }
    let per_sec = (runs * simulated_ms) as f64 / 1000.0 / started.elapsed().as_secs_f64();
    println!("sim: {per_sec:.0} simulated cluster-seconds per wall-clock second");
}

criterion_group!(benches, bench);
criterion_main!(benches);
