use super::*;

const MS: Duration = Duration::from_millis(1);

/// A placement fed on virtual time, a sample every 100 ms.
struct Sim {
    p: Placement,
    t: Duration,
    s: ThreadSample,
}

impl Sim {
    /// A placement whose baseline sample was taken at 0.
    fn new() -> Self {
        let mut p = Placement::new(Duration::ZERO, PlacementConfig::default());
        assert_eq!(
            p.handle_sample(Duration::ZERO, ThreadSample::default()),
            None
        );
        Sim {
            p,
            t: Duration::ZERO,
            s: ThreadSample::default(),
        }
    }

    /// Samples in which the thread ran `busy` and waited `waited` of each 100 ms; the
    /// decisions they brought.
    fn run(&mut self, steps: &[(f64, f64)]) -> Vec<Option<Affinity>> {
        steps
            .iter()
            .map(|&(busy, waited)| {
                self.t += 100 * MS;
                self.s.on_cpu += (100 * MS).mul_f64(busy);
                self.s.waiting += (100 * MS).mul_f64(waited);
                self.p.handle_sample(self.t, self.s)
            })
            .collect()
    }

    /// A simulation whose thread went home after three idle samples.
    fn at_home() -> Self {
        let mut sim = Sim::new();
        sim.run(&[(0.0, 0.0); 3]);
        assert!(sim.p.is_home());
        sim
    }
}

const LIGHT: (f64, f64) = (0.01, 0.0);
const BUSY: (f64, f64) = (0.9, 0.0);
const IDLE: (f64, f64) = (0.0, 0.0);

#[test]
fn a_light_thread_goes_home_after_settling() {
    let mut sim = Sim::new();
    let d = sim.run(&[LIGHT; 4]);
    assert_eq!(d, [None, None, Some(Affinity::Home), None]);
    assert!(sim.p.is_home());
    assert_eq!(sim.p.moves(), 1);
}

#[test]
fn a_busy_thread_is_released_at_once_and_settles_again() {
    let mut sim = Sim::at_home();
    let d = sim.run(&[BUSY, BUSY, LIGHT, LIGHT, LIGHT]);
    let want = [Some(Affinity::Any), None, None, None, Some(Affinity::Home)];
    assert_eq!(d, want);
    assert_eq!(sim.p.last_leave(), Some(Leave::Busy));
}

#[test]
fn a_pause_in_a_transfer_does_not_pin_it() {
    let mut sim = Sim::new();
    let d = sim.run(&[BUSY, IDLE, IDLE, BUSY, IDLE]);
    assert!(d.iter().all(Option::is_none), "{d:?}");
    assert!(!sim.p.is_home());
}

#[test]
fn a_crowded_home_sends_the_thread_away_for_the_backoff() {
    let mut sim = Sim::at_home();
    assert_eq!(sim.run(&[(0.05, 0.3)]), [Some(Affinity::Any)]);
    assert_eq!(sim.p.last_leave(), Some(Leave::Crowded));
    // Light again at once, but held away for 10 s (100 samples).
    let d = sim.run(&[IDLE; 99]);
    assert!(d.iter().all(Option::is_none));
    assert_eq!(sim.run(&[IDLE]), [Some(Affinity::Home)]);
}

#[test]
fn early_samples_change_nothing() {
    let mut sim = Sim::new();
    assert_eq!(sim.p.poll_timeout(), 100 * MS);
    let busy = ThreadSample {
        on_cpu: 50 * MS,
        waiting: Duration::ZERO,
    };
    assert_eq!(sim.p.handle_sample(50 * MS, busy), None);
    assert_eq!(
        sim.p.poll_timeout(),
        100 * MS,
        "an early call does not move the schedule"
    );
}

#[test]
fn a_counter_that_goes_backwards_reads_as_idle() {
    // A sample from another thread (or a reset) must not panic or read as busy.
    let mut sim = Sim::new();
    let ahead = ThreadSample {
        on_cpu: Duration::from_secs(5),
        waiting: Duration::ZERO,
    };
    assert_eq!(sim.p.handle_sample(100 * MS, ahead), None);
    assert_eq!(sim.p.handle_sample(200 * MS, ThreadSample::default()), None);
}
