//! `segwire events [--follow]`: node offline/online, token use, revocations, ...

use anyhow::Result;
use clap::Args;
use segwire_proto::access::Event;

use super::Ctx;
use crate::{table, Output};

/// Options of `segwire events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Keep waiting for new events and print them as they come (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    follow: bool,
}

fn line(e: &Event) -> String {
    format!("{}\t{}\t{}\t{}\t{}", e.id, e.at, e.kind, e.subject, e.data)
}

/// Runs `segwire events`.
pub async fn run(ctx: &Ctx, a: EventsArgs) -> Result<()> {
    if !a.follow {
        let events = ctx.client.events(a.since, None).await?;
        return ctx.print(&events, |ev| {
            table::render(
                &["ID", "TIME", "KIND", "SUBJECT", "DATA"],
                &ev.iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.at.clone(),
                            e.kind.clone(),
                            e.subject.clone(),
                            e.data.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )
        });
    }
    let mut since = a.since;
    loop {
        for e in ctx.client.events(since, Some(30)).await? {
            since = since.max(e.id);
            match ctx.output {
                Output::Json => println!("{}", serde_json::to_string(&e)?),
                Output::Table => println!("{}", line(&e)),
            }
        }
    }
}
