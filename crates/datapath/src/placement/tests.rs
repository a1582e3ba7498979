use super::*;

const MS: Duration = Duration::from_millis(1);

/// Feeds samples every 100 ms in which the thread ran `busy` and waited `waited` of each
/// interval; returns the decisions.
fn run(
    p: &mut Placement,
    t: &mut Duration,
    s: &mut ThreadSample,
    steps: &[(f64, f64)],
) -> Vec<Option<Affinity>> {
    steps
        .iter()
        .map(|&(busy, waited)| {
            *t += 100 * MS;
            s.on_cpu += (100 * MS).mul_f64(busy);
            s.waiting += (100 * MS).mul_f64(waited);
            p.handle_sample(*t, *s)
        })
        .collect()
}

fn start() -> (Placement, Duration, ThreadSample) {
    let mut p = Placement::new(Duration::ZERO, PlacementConfig::default());
    assert_eq!(
        p.handle_sample(Duration::ZERO, ThreadSample::default()),
        None,
        "baseline"
    );
    (p, Duration::ZERO, ThreadSample::default())
}

#[test]
fn a_light_thread_goes_home_after_settling() {
    let (mut p, mut t, mut s) = start();
    let d = run(
        &mut p,
        &mut t,
        &mut s,
        &[(0.01, 0.0), (0.01, 0.0), (0.01, 0.0), (0.01, 0.0)],
    );
    assert_eq!(d, [None, None, Some(Affinity::Home), None]);
    assert!(p.is_home());
    assert_eq!(p.moves(), 1);
}

#[test]
fn a_busy_thread_is_released_at_once_and_settles_again() {
    let (mut p, mut t, mut s) = start();
    run(&mut p, &mut t, &mut s, &[(0.0, 0.0); 3]);
    assert!(p.is_home());
    let d = run(
        &mut p,
        &mut t,
        &mut s,
        &[
            (0.9, 0.0),
            (0.9, 0.0),
            (0.05, 0.0),
            (0.05, 0.0),
            (0.05, 0.0),
        ],
    );
    assert_eq!(
        d,
        [Some(Affinity::Any), None, None, None, Some(Affinity::Home)]
    );
    assert_eq!(p.last_leave(), Some(Leave::Busy));
}

#[test]
fn a_pause_in_a_transfer_does_not_pin_it() {
    let (mut p, mut t, mut s) = start();
    let d = run(
        &mut p,
        &mut t,
        &mut s,
        &[(0.9, 0.0), (0.0, 0.0), (0.0, 0.0), (0.9, 0.0), (0.0, 0.0)],
    );
    assert!(d.iter().all(Option::is_none), "{d:?}");
    assert!(!p.is_home());
}

#[test]
fn a_crowded_home_sends_the_thread_away_for_the_backoff() {
    let (mut p, mut t, mut s) = start();
    run(&mut p, &mut t, &mut s, &[(0.0, 0.0); 3]);
    assert!(p.is_home());
    assert_eq!(
        run(&mut p, &mut t, &mut s, &[(0.05, 0.3)]),
        [Some(Affinity::Any)]
    );
    assert_eq!(p.last_leave(), Some(Leave::Crowded));
    // Light again at once, but held away for 10 s (100 samples).
    let d = run(&mut p, &mut t, &mut s, &[(0.0, 0.0); 99]);
    assert!(d.iter().all(Option::is_none));
    assert_eq!(
        run(&mut p, &mut t, &mut s, &[(0.0, 0.0)]),
        [Some(Affinity::Home)]
    );
}

#[test]
fn early_samples_change_nothing() {
    let (mut p, _, _) = start();
    assert_eq!(p.poll_timeout(), 100 * MS);
    let busy = ThreadSample {
        on_cpu: 50 * MS,
        waiting: Duration::ZERO,
    };
    assert_eq!(p.handle_sample(50 * MS, busy), None);
    assert_eq!(
        p.poll_timeout(),
        100 * MS,
        "an early call does not move the schedule"
    );
}

#[test]
fn a_counter_that_goes_backwards_reads_as_idle() {
    // A sample from another thread (or a reset) must not panic or read as busy.
    let (mut p, _, _) = start();
    let t = 100 * MS;
    let s = ThreadSample {
        on_cpu: Duration::from_secs(5),
        waiting: Duration::ZERO,
    };
    assert_eq!(p.handle_sample(t, s), None);
    let back = ThreadSample::default();
    assert_eq!(p.handle_sample(2 * t, back), None);
}
