//! A native test harness: run a plugin's [`Definition`] under `cargo test`, without wasm or a
//! server. It plays the host: numbers stakeholders, builds the per-call dictionary, sends only
//! the declared context, keeps each stakeholder's state between calls, seeds [`super::random`]
//! per moment exactly as the host does, and goes through the real encode/decode path.
//!
//! ```
//! use plaudit_sdk::plugin::testing::{Harness, TestMoment, What};
//! use plaudit_sdk::plugin::{Definition, Effects, Moment};
//!
//! fn double_meetups(m: &Moment, _: &mut (), out: &mut Effects) {
//!     if m.kind() == "meetup" {
//!         out.award("xp", 2 * m.value().unwrap_or(1.0) as i64);
//!     }
//! }
//! const PLUGIN: Definition<()> = Definition { name: "double", version: "1", needs: &[], handler: double_meetups };
//!
//! let effects = Harness::new(&PLUGIN).score(&[TestMoment::new("ann", "meetup").value(3.0)]).unwrap();
//! assert_eq!(effects[0].stakeholder, "ann");
//! assert_eq!(effects[0].what, What::Award { currency: "xp".into(), amount: 6 });
//! ```

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::guest::{self, HOST};
use super::wire::{self, Bytes, Input, MomentIn, OP_AWARD, OP_BADGE, OP_CUSTOM, OP_WITHHOLD, TO_ACTOR, TO_COUNTERPART};
use super::{Definition, Need, To};
use crate::value::Attrs;

/// A moment to feed the harness. Defaults: channel `web`, at 2026-01-01T00:00:00Z, no value,
/// no counterpart, no teams, no native awards.
#[derive(Clone, Debug, PartialEq)]
pub struct TestMoment {
    pub actor: String,
    pub counterpart: Option<String>,
    pub kind: String,
    pub channel: String,
    pub at: i64,
    pub value: Option<f64>,
    pub actor_team: Option<String>,
    pub counterpart_team: Option<String>,
    pub awards: Vec<(To, String, i64)>,
}

impl TestMoment {
    pub fn new(actor: &str, kind: &str) -> TestMoment {
        TestMoment {
            actor: actor.to_string(),
            counterpart: None,
            kind: kind.to_string(),
            channel: "web".to_string(),
            at: 1_767_225_600,
            value: None,
            actor_team: None,
            counterpart_team: None,
            awards: Vec::new(),
        }
    }

    pub fn counterpart(mut self, who: &str) -> Self {
        self.counterpart = Some(who.to_string());
        self
    }

    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = channel.to_string();
        self
    }

    /// Unix seconds.
    pub fn at(mut self, at: i64) -> Self {
        self.at = at;
        self
    }

    pub fn value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// The actor's and the counterpart's teams.
    pub fn teams(mut self, actor: &str, counterpart: &str) -> Self {
        self.actor_team = Some(actor.to_string());
        self.counterpart_team = Some(counterpart.to_string());
        self
    }

    /// A native award to the actor.
    pub fn award(mut self, currency: &str, amount: i64) -> Self {
        self.awards.push((To::Actor, currency.to_string(), amount));
        self
    }
}

/// An effect the plugin asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    /// Index of the moment in the slice given to [`Harness::score`].
    pub moment: usize,
    pub stakeholder: String,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq)]
pub enum What {
    Award {
        currency: String,
        amount: i64,
    },
    /// Withhold the moment's native awards.
    Withhold {
        reason: String,
    },
    Badge {
        badge: String,
    },
    Custom {
        name: String,
        data: Attrs,
    },
}

/// Plays the host for one plugin. See the module docs.
pub struct Harness<'d, S: 'static> {
    definition: &'d Definition<S>,
    org_seed: u64,
    seq: u64,
    names: Vec<String>,
    numbers: HashMap<String, u32>,
    states: HashMap<u32, Vec<u8>>,
    logs: String,
}

impl<'d, S: Serialize + DeserializeOwned + Default> Harness<'d, S> {
    pub fn new(definition: &'d Definition<S>) -> Self {
        Harness {
            definition,
            org_seed: 0,
            seq: 0,
            names: Vec::new(),
            numbers: HashMap::new(),
            states: HashMap::new(),
            logs: String::new(),
        }
    }

    /// The organisation seed that [`super::random`] streams derive from.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.org_seed = seed;
        self
    }

    fn number(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.numbers.get(name) {
            return n;
        }
        let n = self.names.len() as u32;
        self.names.push(name.to_string());
        self.numbers.insert(name.to_string(), n);
        n
    }

    /// Runs the plugin over `moments` as one call, as the host would, and returns the effects it
    /// asked for; `Err` is the reason the host would record for a failed call.
    pub fn score(&mut self, moments: &[TestMoment]) -> Result<Vec<Emitted>, String> {
        let definition = self.definition;
        let mut dict: Vec<String> = Vec::new();
        let word = |s: &str, dict: &mut Vec<String>| -> u32 {
            match dict.iter().position(|d| d == s) {
                Some(i) => i as u32,
                None => {
                    dict.push(s.to_string());
                    dict.len() as u32 - 1
                }
            }
        };
        let mut input = Input::default();
        let mut seeds = Vec::new();
        for t in moments {
            self.seq += 1;
            seeds.push(wire::moment_seed(self.org_seed, self.seq));
            let actor = self.number(&t.actor);
            let counterpart = t.counterpart.as_deref().map(|c| self.number(c));
            let teams = definition.needs(Need::Teams);
            let mut m = MomentIn {
                seq: self.seq,
                actor,
                counterpart,
                kind: word(&t.kind, &mut dict),
                channel: word(&t.channel, &mut dict),
                at: t.at,
                value: t.value,
                actor_team: None,
                counterpart_team: None,
                awards: Vec::new(),
            };
            if teams {
                m.actor_team = t.actor_team.as_deref().map(|s| word(s, &mut dict));
                m.counterpart_team = t.counterpart_team.as_deref().map(|s| word(s, &mut dict));
            }
            if definition.needs(Need::Awards) {
                for (to, currency, amount) in &t.awards {
                    let to = if *to == To::Counterpart { TO_COUNTERPART } else { TO_ACTOR };
                    m.awards.push((to, word(currency, &mut dict), *amount));
                }
            }
            if definition.needs(Need::State) && !input.states.iter().any(|(who, _)| *who == actor) {
                if let Some(saved) = self.states.get(&actor) {
                    input.states.push((actor, Bytes(saved.clone())));
                }
            }
            input.moments.push(m);
        }
        input.dict = dict;
        let bytes = wire::encode(&input).map_err(|e| format!("harness: the input does not encode: {}", e))?;

        HOST.with(|h| {
            let mut h = h.borrow_mut();
            h.seeds = seeds;
            h.moment = 0;
            h.stream = None;
            h.logs.clear();
        });
        let output = guest::process(definition, &bytes);
        self.logs = HOST.with(|h| std::mem::take(&mut h.borrow_mut().logs));
        // Through the encoding too, as the host would read it.
        let encoded = wire::encode(&output).map_err(|e| format!("the output does not encode: {}", e))?;
        let output: wire::Output = wire::decode(&encoded).map_err(|e| format!("the output does not decode: {}", e))?;
        if let Some(error) = output.error {
            return Err(error);
        }

        let mut emitted = Vec::new();
        for e in output.effects {
            let t = moments
                .get(e.moment as usize)
                .ok_or_else(|| format!("effect for moment {} of {}", e.moment, moments.len()))?;
            let stakeholder = match e.to {
                TO_ACTOR => t.actor.clone(),
                TO_COUNTERPART => match &t.counterpart {
                    Some(c) => c.clone(),
                    None => continue,
                },
                other => return Err(format!("effect target {} is neither actor nor counterpart", other)),
            };
            let what = match e.op {
                OP_AWARD => What::Award { currency: e.name, amount: e.amount },
                OP_WITHHOLD => What::Withhold { reason: e.name },
                OP_BADGE => What::Badge { badge: e.name },
                OP_CUSTOM => What::Custom { name: e.name, data: e.data },
                other => return Err(format!("unknown effect operation {}", other)),
            };
            emitted.push(Emitted { moment: e.moment as usize, stakeholder, what });
        }
        for (who, state) in output.states {
            match state {
                Some(bytes) => self.states.insert(who, bytes.0),
                None => self.states.remove(&who),
            };
        }
        Ok(emitted)
    }

    /// The state saved for `stakeholder`, if any.
    pub fn state(&self, stakeholder: &str) -> Option<S> {
        let n = self.numbers.get(stakeholder)?;
        wire::decode(self.states.get(n)?).ok()
    }

    /// What the plugin logged during the last [`Harness::score`].
    pub fn logs(&self) -> &str {
        &self.logs
    }
}
