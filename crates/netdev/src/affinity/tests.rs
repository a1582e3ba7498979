use super::*;

#[test]
fn schedstat_parses_its_three_fields() {
    let s = parse_schedstat("1500 250 7\n").expect("parses");
    assert_eq!(s.on_cpu, Duration::from_nanos(1500));
    assert_eq!(s.waiting, Duration::from_nanos(250));
    assert_eq!(parse_schedstat("12"), None);
    assert_eq!(parse_schedstat("x 1 2"), None);
}

#[test]
fn the_thread_sees_its_own_time_grow() {
    let before = thread_sample().expect("schedstat");
    let t = std::time::Instant::now();
    let mut x = 0u64;
    while t.elapsed() < Duration::from_millis(20) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let after = thread_sample().expect("schedstat");
    assert!(
        after.on_cpu >= before.on_cpu + Duration::from_millis(10),
        "{before:?} -> {after:?}"
    );
}

#[test]
fn a_thread_pinned_to_a_cpu_runs_there_and_is_released_again() {
    // A thread of its own: the test harness's threads keep their masks.
    std::thread::spawn(|| {
        let all = CpuMask::current().expect("affinity");
        assert!(!all.is_empty());
        let cpu = *all.cpus().last().expect("a CPU");
        CpuMask::pin(cpu).expect("pin");
        assert_eq!(CpuMask::current().expect("affinity").cpus(), [cpu]);
        assert_eq!(nix::sched::sched_getcpu().expect("cpu"), cpu);
        all.apply().expect("release");
        assert_eq!(CpuMask::current().expect("affinity"), all);
    })
    .join()
    .expect("thread");
}
