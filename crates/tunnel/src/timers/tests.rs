use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn established(initiator: bool) -> Timers {
    let mut t = Timers::new(s(0), None);
    t.on_initiation_sent(s(0));
    t.on_received(s(0), false);
    t.on_session_established(s(0), initiator);
    t
}

#[test]
fn retransmits_after_rekey_timeout_then_gives_up() {
    let mut t = Timers::new(s(0), None);
    t.on_initiation_sent(s(0));
    assert_eq!(t.poll(s(4)), TimerAction::Nothing);
    assert_eq!(t.poll(s(5)), TimerAction::Initiate);
    t.on_initiation_sent(s(5));
    assert_eq!(t.poll(s(6)), TimerAction::Nothing);
    assert!(t.attempt_active());
    assert_eq!(t.poll(s(90)), TimerAction::Nothing);
    assert!(!t.attempt_active(), "gave up after REKEY_ATTEMPT_TIME");
}

#[test]
fn initiator_rekeys_after_120s_when_sending() {
    let mut t = established(true);
    t.on_data_sent(s(100), false);
    t.on_received(s(100), true);
    assert_eq!(t.poll(s(119)), TimerAction::Nothing);
    assert_eq!(t.poll(s(120)), TimerAction::Initiate);
}

#[test]
fn responder_does_not_rekey_on_send() {
    let mut t = established(false);
    t.on_data_sent(s(100), false);
    t.on_received(s(100), false);
    assert_eq!(t.poll(s(130)), TimerAction::Nothing);
}

#[test]
fn initiator_rekeys_at_165s_when_only_receiving() {
    let mut t = established(true);
    t.on_received(s(100), true);
    t.on_data_sent(s(100), true); // keepalive only
    assert_eq!(t.poll(s(164)), TimerAction::Nothing);
    assert_eq!(t.poll(s(165)), TimerAction::Initiate);
}

#[test]
fn sessions_expire_after_180s() {
    let mut t = established(false);
    assert_eq!(t.poll(s(180)), TimerAction::ExpireSessions);
    t.on_sessions_cleared();
    assert_eq!(t.poll(s(181)), TimerAction::Nothing);
}

#[test]
fn keepalive_after_10s_of_unanswered_data() {
    let mut t = established(false);
    t.on_received(s(5), true);
    assert_eq!(t.poll(s(9)), TimerAction::Nothing);
    assert_eq!(t.poll(s(10)), TimerAction::Keepalive);
    t.on_data_sent(s(10), true);
    assert_eq!(t.poll(s(30)), TimerAction::Nothing);
}

#[test]
fn handshake_after_15s_without_answer() {
    let mut t = established(false);
    t.on_data_sent(s(1), false);
    assert_eq!(t.poll(s(14)), TimerAction::Nothing);
    assert_eq!(t.poll(s(15)), TimerAction::Initiate);
}

#[test]
fn persistent_keepalive_when_quiet() {
    let mut t = Timers::new(s(0), Some(25));
    assert_eq!(t.poll(s(24)), TimerAction::Nothing);
    assert_eq!(t.poll(s(25)), TimerAction::Keepalive);
    assert_eq!(t.poll(s(26)), TimerAction::Nothing);
    t.on_data_sent(s(40), false);
    assert_eq!(t.poll(s(60)), TimerAction::Nothing);
    assert_eq!(t.poll(s(65)), TimerAction::Keepalive);
    t.set_persistent_keepalive(None);
    assert_eq!(t.poll(s(200)), TimerAction::Nothing);
}
