//! What the policies alone say about one flow, evaluated the way Felix evaluates them, with no
//! dataplane involved: egress at the source endpoint, ingress at the destination endpoint.
//!
//! For each direction: the enforced policies that select the endpoint and govern that
//! direction (preDNAT and doNotTrack ones excepted, as Felix renders those elsewhere), grouped
//! in tiers and ordered as [`crate::calico::order::order_policies`] orders them for the
//! model's Calico version; then each policy's rules in order. A matching Allow or Deny decides,
//! Pass jumps to the next tier, Log goes on. A tier whose policies all fall through applies
//! its default action (Deny, or Pass to the next tier). When no tier holds a policy for the
//! direction, or the last one passed, the endpoint's profiles decide; none matching is a deny.
//! Each decision is reported as a [`PolicyHit`] in the vocabulary of Calico flow logs
//! (`0|tier|ns/tier.policy|allow|0`).
//!
//! A rule is matched on protocol, notProtocol, ipVersion, ports and notPorts (ranges, named
//! ports resolved on the endpoint that owns the port), selectors (evaluated, like Felix's IP
//! sets, on the endpoint and the network sets that hold the IP: a selector never matches an IP
//! outside the bundle), notSelector, nets and notNets. What cannot be known offline is
//! *Unknown*: ICMP type/code when the flow is ICMP, `http` matches, `services` matches,
//! source ports, a destination port not given, service-account matches when the bundle lacks
//! the service account's labels, a profile the bundle does not hold. An Unknown rule only
//! makes the verdict Unknown when matching and not matching it would end differently.
//!
//! Not here: conntrack (established flows pass before any policy), failsafe ports, host
//! endpoints' preDNAT/untracked/forward chains, the dataplane itself (see the dataplane
//! simulation of the trace).

use std::cell::Cell;
use std::collections::HashMap;

use serde::Serialize;

use super::flow::{
    Flow, FlowEnd, PROTO_ICMP, PROTO_ICMPV6, has_ports, protocol_name, protocol_number,
};
use crate::calico::labels::{NAMESPACE_PROFILE_PREFIX, SERVICE_ACCOUNT_PROFILE_PREFIX};
use crate::calico::names::{Direction, PolicyKind};
use crate::calico::order::{self, SortablePolicy, SortableTier, TierDefaultAction};
use crate::model::endpoints::parse_net;
use crate::model::{Loc, Model, Policy, PolicyRule, RuleSide};
use crate::parse::resources::{self, Port};

/// The tier name flow logs give profiles.
pub const PROFILE_TIER: &str = "__PROFILE__";
/// The policy name flow logs give "nothing matched".
pub const NO_MATCH: &str = "__NO_MATCH__";
/// The profile Calico gives host endpoints that should allow everything.
const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";
/// How many undecidable rules may be explored both ways before giving up.
const BRANCH_BUDGET: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Unknown => "unknown",
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HitAction {
    /// A policy rule allowed the flow.
    Allow,
    /// A policy rule denied it.
    Deny,
    /// A policy rule passed it to the next tier.
    Pass,
    /// A Log rule matched; evaluation went on.
    Log,
    /// No policy of the tier decided; the tier's default action (Deny) applied.
    EotDeny,
    /// No policy of the tier decided; the tier's default action (Pass) applied.
    EotPass,
    ProfileAllow,
    ProfileDeny,
    /// A profile rule passed: the next profile is consulted.
    ProfilePass,
    /// No profile allowed the flow ("Drop if no profiles matched").
    NoProfileDeny,
    /// A rule could not be evaluated offline and the outcome depends on it.
    Unknown,
}

impl HitAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HitAction::Allow => "allow",
            HitAction::Deny => "deny",
            HitAction::Pass => "pass",
            HitAction::Log => "log",
            HitAction::EotDeny => "eot-deny",
            HitAction::EotPass => "eot-pass",
            HitAction::ProfileAllow => "profile-allow",
            HitAction::ProfileDeny => "profile-deny",
            HitAction::ProfilePass => "profile-pass",
            HitAction::NoProfileDeny => "no-profile-deny",
            HitAction::Unknown => "unknown",
        }
    }

    /// The action word of a flow log's policy string.
    pub fn flow_log_action(self) -> &'static str {
        match self {
            HitAction::Allow | HitAction::ProfileAllow => "allow",
            HitAction::Deny
            | HitAction::EotDeny
            | HitAction::ProfileDeny
            | HitAction::NoProfileDeny => "deny",
            HitAction::Pass | HitAction::EotPass | HitAction::ProfilePass => "pass",
            HitAction::Log => "log",
            HitAction::Unknown => "unknown",
        }
    }

    /// Whether Felix's flow logs list such a hit (Log rules and our own Unknown are not).
    pub fn in_flow_log(self) -> bool {
        !matches!(self, HitAction::Log | HitAction::Unknown)
    }

    /// Whether the hit ends evaluation in its direction.
    pub fn decides(self) -> bool {
        !matches!(
            self,
            HitAction::Pass | HitAction::Log | HitAction::EotPass | HitAction::ProfilePass
        )
    }
}

/// One step of a direction's evaluation, as a flow log's `enforced_policies` entry names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyHit {
    /// Position in the flow log's policy list (one entry per tier traversed, then the
    /// profile). Log steps carry the index of the entry that follows them.
    pub index: usize,
    /// Tier name, or `__PROFILE__`.
    pub tier: String,
    /// The policy's display name (`demo/allow-to-backend`), or the profile name.
    pub policy: String,
    /// The name flow logs use: `ns/tier.name`, `tier.name`, `ns/knp.default.name`,
    /// `__PROFILE__.kns.ns`, `__PROFILE__.__NO_MATCH__`.
    pub flow_log_name: String,
    pub action: HitAction,
    /// Rule index within the direction; `None` for end-of-tier and no-profile steps.
    pub rule: Option<usize>,
    /// 1-based line of the rule in `path`.
    pub rule_line: Option<usize>,
    /// Artifact holding the policy, tier or profile.
    pub path: Option<String>,
    /// Line of the policy, tier or profile object.
    pub line: Option<usize>,
    pub note: Option<String>,
}

impl PolicyHit {
    /// `index|tier|name|action|rule`, rule `-1` for an end-of-tier action, as Calico's flow
    /// logs write `enforced_policies`.
    pub fn to_flow_log(&self) -> String {
        let rule = match self.action {
            HitAction::EotDeny | HitAction::EotPass => "-1".to_string(),
            _ => self.rule.unwrap_or(0).to_string(),
        };
        format!(
            "{}|{}|{}|{}|{rule}",
            self.index,
            self.tier,
            self.flow_log_name,
            self.action.flow_log_action()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleOutcome {
    Match,
    NoMatch,
    Unknown,
}

/// One rule looked at, whether it matched, and why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCheck {
    pub tier: String,
    pub policy: String,
    pub rule: usize,
    pub rule_line: Option<usize>,
    /// The rule's action as written.
    pub action: String,
    pub outcome: RuleOutcome,
    /// For no-match and unknown: the first field that decided it.
    pub reason: Option<String>,
}

/// The verdict of one direction at one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionResult {
    pub direction: Direction,
    /// The endpoint policed (`namespace/pod` or host endpoint name).
    pub endpoint: Option<String>,
    /// False when this end is not a Calico endpoint: Calico does not police it, and the
    /// verdict is Allow as far as Calico is concerned.
    pub policed: bool,
    pub verdict: Verdict,
    pub steps: Vec<PolicyHit>,
    /// The step that decided (allow, deny, end-of-tier, profile, unknown).
    pub deciding: Option<PolicyHit>,
    /// Every rule evaluated on the way, in order.
    pub checked: Vec<RuleCheck>,
    /// Staged policies that select the endpoint for this direction: not enforced.
    pub staged: Vec<String>,
    pub notes: Vec<String>,
}

impl DirectionResult {
    /// The `enforced_policies` strings Felix would log for this direction.
    pub fn flow_log(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.action.in_flow_log())
            .map(PolicyHit::to_flow_log)
            .collect()
    }

    /// One line: what decided and where.
    pub fn explain(&self) -> String {
        let dir = self.direction.word();
        let Some(ep) = &self.endpoint else {
            return format!("{dir}: not a Calico endpoint, not policed by Calico");
        };
        let Some(h) = &self.deciding else {
            return format!("{dir} at {ep}: {}", self.verdict.as_str());
        };
        let rule = h.rule.map(|r| format!(" rule {r}")).unwrap_or_default();
        match h.action {
            HitAction::Allow | HitAction::Deny => format!(
                "{dir} at {ep}: {} by {}{rule} (tier {})",
                past(h.action),
                h.policy,
                h.tier
            ),
            HitAction::EotDeny => format!(
                "{dir} at {ep}: denied at the end of tier {} (no rule of its policies matched)",
                h.tier
            ),
            HitAction::ProfileAllow | HitAction::ProfileDeny => format!(
                "{dir} at {ep}: {} by profile {}{rule}",
                past(h.action),
                h.policy
            ),
            HitAction::NoProfileDeny => format!("{dir} at {ep}: denied, no profile matched"),
            _ => format!(
                "{dir} at {ep}: unknown ({})",
                h.note.as_deref().unwrap_or("a rule could not be evaluated")
            ),
        }
    }
}

fn past(a: HitAction) -> &'static str {
    match a.flow_log_action() {
        "allow" => "allowed",
        "deny" => "denied",
        _ => "decided",
    }
}

/// The intent verdict of a flow: Allow only when both directions allow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentVerdict {
    pub verdict: Verdict,
    pub egress: DirectionResult,
    pub ingress: DirectionResult,
}

impl IntentVerdict {
    /// One line per direction.
    pub fn explain(&self) -> String {
        format!("{}; {}", self.egress.explain(), self.ingress.explain())
    }
}

/// Evaluate both directions of a flow.
pub fn evaluate(model: &Model<'_>, flow: &Flow) -> IntentVerdict {
    evaluate_cached(model, flow, &mut PlanCache::default())
}

/// [`evaluate`], reusing the plans of endpoints met before.
pub fn evaluate_cached<'b>(
    model: &Model<'b>,
    flow: &Flow,
    cache: &mut PlanCache<'b>,
) -> IntentVerdict {
    let egress = direction_cached(model, flow, Direction::Egress, cache);
    let ingress = direction_cached(model, flow, Direction::Ingress, cache);
    let verdict = match (egress.verdict, ingress.verdict) {
        (Verdict::Deny, _) | (_, Verdict::Deny) => Verdict::Deny,
        (Verdict::Allow, Verdict::Allow) => Verdict::Allow,
        _ => Verdict::Unknown,
    };
    IntentVerdict {
        verdict,
        egress,
        ingress,
    }
}

/// Evaluate one direction: egress at the source endpoint, ingress at the destination one.
pub fn evaluate_direction(model: &Model<'_>, flow: &Flow, dir: Direction) -> DirectionResult {
    direction_cached(model, flow, dir, &mut PlanCache::default())
}

fn direction_cached<'b>(
    model: &Model<'b>,
    flow: &Flow,
    dir: Direction,
    cache: &mut PlanCache<'b>,
) -> DirectionResult {
    let end = match dir {
        Direction::Egress => &flow.src,
        Direction::Ingress => &flow.dst,
    };
    let Some(ei) = end.endpoint else {
        return DirectionResult {
            direction: dir,
            endpoint: None,
            policed: false,
            verdict: Verdict::Allow,
            steps: Vec::new(),
            deciding: None,
            checked: Vec::new(),
            staged: Vec::new(),
            notes: vec![format!(
                "{} is not a Calico endpoint: Calico does not police its {}",
                end.label,
                dir.word()
            )],
        };
    };
    let plan = cache.plans.entry((ei, dir)).or_insert_with(|| {
        let profiles = cache.profiles.get_or_insert_with(|| {
            let mut by_name = HashMap::new();
            for (i, p) in model.resources.profiles.iter().enumerate() {
                // The first of duplicate names wins, as a scan would find it.
                by_name.entry(p.item.meta.name.as_str()).or_insert(i);
            }
            by_name
        });
        Plan::new(model, dir, ei, profiles)
    });
    let ev = Eval {
        model,
        flow,
        dir,
        ep: ei,
        plan,
        budget: Cell::new(BRANCH_BUDGET),
    };
    let mut acc = ev.run(
        Pos::Tier { t: 0, p: 0, r: 0 },
        Acc {
            verdict: Verdict::Unknown,
            steps: Vec::new(),
            checked: Vec::new(),
            notes: ev.plan.notes.clone(),
        },
    );
    let mut n = 0;
    for s in &mut acc.steps {
        s.index = n;
        if s.action.in_flow_log() {
            n += 1;
        }
    }
    let deciding = acc.steps.iter().rev().find(|s| s.action.decides()).cloned();
    DirectionResult {
        direction: dir,
        endpoint: Some(model.endpoints[ei].key.clone()),
        policed: true,
        verdict: acc.verdict,
        steps: acc.steps,
        deciding,
        checked: acc.checked,
        staged: ev.plan.staged.clone(),
        notes: acc.notes,
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Kleene truth of a rule (or of one of its fields) for the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tri {
    Yes,
    No(String),
    Unknown(String),
}

impl Tri {
    /// All must hold: any No decides, else any Unknown, else Yes.
    fn all(parts: Vec<Tri>) -> Tri {
        if let Some(no) = parts.iter().find(|t| matches!(t, Tri::No(_))) {
            return no.clone();
        }
        parts
            .into_iter()
            .find(|t| matches!(t, Tri::Unknown(_)))
            .unwrap_or(Tri::Yes)
    }
}

/// Where evaluation stands: a rule of a policy of a tier, or a rule of a profile.
#[derive(Debug, Clone, Copy)]
enum Pos {
    Tier { t: usize, p: usize, r: usize },
    Profile { k: usize, r: usize },
}

#[derive(Debug, Clone)]
struct Acc {
    verdict: Verdict,
    steps: Vec<PolicyHit>,
    checked: Vec<RuleCheck>,
    notes: Vec<String>,
}

struct TierPlan {
    tier: SortableTier,
    loc: Option<Loc>,
    /// Policy indexes, in Felix's order.
    policies: Vec<usize>,
}

enum ProfileRules<'b> {
    /// Rules from the bundle's Profile object, converted, with the raw rule.
    Rules(Vec<(PolicyRule, &'b resources::Rule)>),
    /// A profile Calico generates to allow everything (`kns.*`, the default-allow profile).
    AllowAll(&'static str),
    /// Known to carry no rules (`ksa.*` profiles carry labels only).
    NoRules,
    /// Named by the endpoint but not in the bundle.
    Missing,
}

struct ProfilePlan<'b> {
    name: String,
    loc: Option<Loc>,
    rules: ProfileRules<'b>,
}

enum Act {
    Allow,
    Deny,
    Pass,
    Log,
    Other(String),
}

fn act(action: &str) -> Act {
    match action.to_ascii_lowercase().as_str() {
        "allow" => Act::Allow,
        "deny" => Act::Deny,
        "pass" | "next-tier" => Act::Pass,
        "log" => Act::Log,
        _ => Act::Other(action.to_string()),
    }
}

/// What applies to one endpoint in one direction, whatever the flow: the policies in Felix's
/// order, by tier, then the profiles.
pub struct Plan<'b> {
    tiers: Vec<TierPlan>,
    profiles: Vec<ProfilePlan<'b>>,
    staged: Vec<String>,
    notes: Vec<String>,
}

/// Plans computed so far, by endpoint and direction: evaluating many flows between the same
/// endpoints (a conntrack table) orders their policies once.
#[derive(Default)]
pub struct PlanCache<'b> {
    plans: HashMap<(usize, Direction), Plan<'b>>,
    /// Profile resources by name (index into `Resources::profiles`), built on first use.
    profiles: Option<HashMap<&'b str, usize>>,
}

struct Eval<'a, 'b> {
    model: &'a Model<'b>,
    flow: &'a Flow,
    dir: Direction,
    ep: usize,
    plan: &'a Plan<'b>,
    budget: Cell<usize>,
}

impl<'b> Plan<'b> {
    fn new(
        model: &Model<'b>,
        dir: Direction,
        ep: usize,
        profiles: &HashMap<&'b str, usize>,
    ) -> Self {
        let endpoint = &model.endpoints[ep];
        let mut notes = Vec::new();
        let mut staged = Vec::new();
        let mut applying = Vec::new();
        for (pi, p) in model.policies.iter().enumerate() {
            if !p.types.governs(dir) {
                continue;
            }
            if p.staged {
                let selects = match &p.selector {
                    Ok(sel) => sel.evaluate(&endpoint.labels),
                    Err(_) => false,
                };
                if selects {
                    staged.push(format!(
                        "{} (tier {}): staged: not enforced",
                        p.display, p.tier
                    ));
                }
                continue;
            }
            if model.endpoint_policies[ep].binary_search(&pi).is_err() {
                continue;
            }
            if !p.enforced() {
                let fields: Vec<&str> = p.invalid.iter().map(|i| i.field.as_str()).collect();
                notes.push(format!(
                    "{} selects {} but Felix drops it: invalid selector in {}",
                    p.display,
                    endpoint.key,
                    fields.join(", ")
                ));
                continue;
            }
            if p.pre_dnat || p.do_not_track {
                notes.push(format!(
                    "{} is {}: Felix applies it only in host endpoints' {} chains; not evaluated here",
                    p.display,
                    if p.pre_dnat { "preDNAT" } else { "doNotTrack" },
                    if p.pre_dnat { "mangle" } else { "raw" }
                ));
                continue;
            }
            applying.push(pi);
        }
        let sortable: Vec<SortablePolicy> = applying
            .iter()
            .map(|&pi| {
                let p = &model.policies[pi];
                SortablePolicy::new(p.key.clone(), p.order, p.types, &p.selector_raw)
            })
            .collect();
        let ordered =
            order::order_policies(&model.sortable_tiers(), &sortable, model.calico_version());
        let mut tiers = Vec::new();
        for t in ordered {
            let policies: Vec<usize> = t
                .for_direction(dir)
                .into_iter()
                .filter_map(|sp| {
                    applying
                        .iter()
                        .copied()
                        .find(|&pi| model.policies[pi].key == sp.key)
                })
                .collect();
            if policies.is_empty() {
                continue;
            }
            if !t.tier.valid {
                notes.push(format!(
                    "tier {} has no Tier resource in the bundle: Felix orders it last and denies at its end",
                    t.tier.name
                ));
            }
            let loc = model
                .resources
                .tiers
                .iter()
                .find(|r| r.item.meta.name == t.tier.name)
                .map(|r| r.loc());
            tiers.push(TierPlan {
                tier: t.tier,
                loc,
                policies,
            });
        }
        let profiles = endpoint
            .profiles
            .iter()
            .map(|name| profile_plan(model, profiles, name, dir))
            .collect();
        Plan {
            tiers,
            profiles,
            staged,
            notes,
        }
    }
}

impl<'a, 'b> Eval<'a, 'b> {
    /// Evaluate from `pos` to a verdict.
    fn run(&self, mut pos: Pos, mut acc: Acc) -> Acc {
        loop {
            let next = match pos {
                Pos::Tier { t, p, r } => self.tier_step(t, p, r, acc),
                Pos::Profile { k, r } => self.profile_step(k, r, acc),
            };
            match next {
                Next::Go(p, a) => {
                    pos = p;
                    acc = a;
                }
                Next::Done(a) => return a,
            }
        }
    }

    /// Rule `r` of policy `p` of tier `t`, or the end of that policy or tier.
    fn tier_step(&self, t: usize, p: usize, r: usize, mut acc: Acc) -> Next {
        let next_tier = Pos::Tier {
            t: t + 1,
            p: 0,
            r: 0,
        };
        let Some(plan) = self.plan.tiers.get(t) else {
            return Next::Go(Pos::Profile { k: 0, r: 0 }, acc);
        };
        let Some(&pi) = plan.policies.get(p) else {
            // Every policy of the tier fell through: its default action applies.
            let last = plan.policies.last().map(|&pi| &self.model.policies[pi]);
            acc.steps.push(self.end_of_tier_hit(plan, last));
            return match plan.tier.default_action {
                TierDefaultAction::Deny => {
                    acc.verdict = Verdict::Deny;
                    Next::Done(acc)
                }
                TierDefaultAction::Pass => Next::Go(next_tier, acc),
            };
        };
        let policy = &self.model.policies[pi];
        let Some(rule) = policy.rules_in(self.dir).nth(r) else {
            acc.notes.push(format!(
                "{} (tier {}): no {} rule matched",
                policy.display,
                plan.tier.name,
                self.dir.word()
            ));
            return Next::Go(Pos::Tier { t, p: p + 1, r: 0 }, acc);
        };
        let tri = self.match_rule(rule, raw_rule(self.model, policy, rule));
        acc.checked
            .push(check(&plan.tier.name, &policy.display, rule, &tri));
        let hit = self.policy_hit(plan, policy, rule);
        let next = Pos::Tier { t, p, r: r + 1 };
        self.decide(tri, &rule.action, hit, next, next_tier, false, acc)
    }

    /// Rule `r` of profile `k`, or the end of the profiles.
    fn profile_step(&self, k: usize, r: usize, mut acc: Acc) -> Next {
        let next_profile = Pos::Profile { k: k + 1, r: 0 };
        let Some(prof) = self.plan.profiles.get(k) else {
            let note = if self.plan.profiles.is_empty() {
                format!(
                    "{} has no profiles and no policy decided: Felix drops",
                    self.model.endpoints[self.ep].key
                )
            } else {
                "no profile matched".to_string()
            };
            acc.steps.push(PolicyHit {
                index: 0,
                tier: PROFILE_TIER.to_string(),
                policy: NO_MATCH.to_string(),
                flow_log_name: format!("{PROFILE_TIER}.{NO_MATCH}"),
                action: HitAction::NoProfileDeny,
                rule: None,
                rule_line: None,
                path: None,
                line: None,
                note: Some(note),
            });
            acc.verdict = Verdict::Deny;
            return Next::Done(acc);
        };
        let base = PolicyHit {
            index: 0,
            tier: PROFILE_TIER.to_string(),
            policy: prof.name.clone(),
            flow_log_name: format!("{PROFILE_TIER}.{}", prof.name),
            action: HitAction::Unknown,
            rule: None,
            rule_line: None,
            path: prof.loc.as_ref().map(|l| l.path.clone()),
            line: prof.loc.as_ref().map(|l| l.line),
            note: None,
        };
        match &prof.rules {
            ProfileRules::AllowAll(why) => {
                acc.steps.push(PolicyHit {
                    action: HitAction::ProfileAllow,
                    rule: Some(0),
                    note: Some(why.to_string()),
                    ..base
                });
                acc.verdict = Verdict::Allow;
                Next::Done(acc)
            }
            ProfileRules::Missing => {
                acc.steps.push(PolicyHit {
                    note: Some(format!(
                        "profile {} is not in the bundle: its rules are unknown",
                        prof.name
                    )),
                    ..base
                });
                acc.verdict = Verdict::Unknown;
                Next::Done(acc)
            }
            ProfileRules::NoRules => Next::Go(next_profile, acc),
            ProfileRules::Rules(list) => {
                let Some((rule, raw)) = list.get(r) else {
                    return Next::Go(next_profile, acc);
                };
                let tri = self.match_rule(rule, Some(raw));
                acc.checked
                    .push(check(PROFILE_TIER, &prof.name, rule, &tri));
                let hit = PolicyHit {
                    rule: Some(rule.index),
                    rule_line: Some(rule.line),
                    ..base
                };
                let next = Pos::Profile { k, r: r + 1 };
                self.decide(tri, &rule.action, hit, next, next_profile, true, acc)
            }
        }
    }

    /// Apply a rule's action according to whether it matched; an undecidable rule is followed
    /// both ways and only makes the verdict Unknown when the two ways end differently.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        tri: Tri,
        action: &str,
        hit: PolicyHit,
        next: Pos,
        pass_to: Pos,
        profile: bool,
        mut acc: Acc,
    ) -> Next {
        match tri {
            Tri::No(_) => Next::Go(next, acc),
            Tri::Yes => apply(act(action), hit, next, pass_to, profile, acc),
            Tri::Unknown(reason) => {
                if matches!(act(action), Act::Log) {
                    // A Log rule changes nothing either way.
                    return Next::Go(next, acc);
                }
                let what = format!(
                    "{}{}: {reason}",
                    hit.policy,
                    hit.rule.map(|r| format!(" rule {r}")).unwrap_or_default()
                );
                let left = self.budget.get();
                if left > 0 {
                    self.budget.set(left - 1);
                    let matched = match apply(
                        act(action),
                        hit.clone(),
                        next,
                        pass_to,
                        profile,
                        acc.clone(),
                    ) {
                        Next::Go(p, a) => self.run(p, a),
                        Next::Done(a) => a,
                    };
                    let unmatched = self.run(next, acc.clone());
                    if matched.verdict == unmatched.verdict && matched.verdict != Verdict::Unknown {
                        let mut out = unmatched;
                        out.notes.push(format!(
                            "{what}; the verdict is the same whether or not it matches"
                        ));
                        return Next::Done(out);
                    }
                }
                acc.steps.push(PolicyHit {
                    action: HitAction::Unknown,
                    note: Some(what),
                    ..hit
                });
                acc.verdict = Verdict::Unknown;
                Next::Done(acc)
            }
        }
    }

    fn policy_hit(&self, plan: &TierPlan, policy: &Policy, rule: &PolicyRule) -> PolicyHit {
        PolicyHit {
            index: 0,
            tier: plan.tier.name.clone(),
            policy: policy.display.clone(),
            flow_log_name: flow_log_name(policy),
            action: HitAction::Unknown,
            rule: Some(rule.index),
            rule_line: Some(rule.line),
            path: Some(policy.loc.path.clone()),
            line: Some(policy.loc.line),
            note: None,
        }
    }

    /// Felix reports an end-of-tier action against the tier's last policy, rule index -1.
    fn end_of_tier_hit(&self, plan: &TierPlan, last: Option<&Policy>) -> PolicyHit {
        let (action, word) = match plan.tier.default_action {
            TierDefaultAction::Deny => (HitAction::EotDeny, "Deny"),
            TierDefaultAction::Pass => (HitAction::EotPass, "Pass"),
        };
        let names: Vec<&str> = plan
            .policies
            .iter()
            .map(|&pi| self.model.policies[pi].display.as_str())
            .collect();
        let loc = plan.loc.clone().or_else(|| last.map(|p| p.loc.clone()));
        PolicyHit {
            index: 0,
            tier: plan.tier.name.clone(),
            policy: last.map(|p| p.display.clone()).unwrap_or_default(),
            flow_log_name: last
                .map(flow_log_name)
                .unwrap_or_else(|| format!("{}.{NO_MATCH}", plan.tier.name)),
            action,
            rule: None,
            rule_line: None,
            path: loc.as_ref().map(|l| l.path.clone()),
            line: loc.as_ref().map(|l| l.line),
            note: Some(format!(
                "no rule of {} matched: end of tier {}, default action {word}",
                names.join(", "),
                plan.tier.name
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rule matching
    // -----------------------------------------------------------------------------------------

    fn match_rule(&self, rule: &PolicyRule, raw: Option<&resources::Rule>) -> Tri {
        let flow = self.flow;
        let v6 = flow.dst.ip.is_ipv6();
        let proto = protocol_name(flow.protocol);
        let mut parts = Vec::new();
        if let Some(v) = rule.ip_version {
            let want6 = v == 6;
            if want6 != v6 {
                parts.push(Tri::No(format!(
                    "ipVersion {v}, the flow is IPv{}",
                    if v6 { 6 } else { 4 }
                )));
            }
        }
        if let Some(p) = &rule.protocol {
            parts.push(match protocol_number(p) {
                Some(n) if n == flow.protocol => Tri::Yes,
                Some(_) => Tri::No(format!("protocol {p}, the flow is {proto}")),
                None => Tri::Unknown(format!("protocol {p:?} is not one Calico knows")),
            });
        }
        if let Some(raw) = raw {
            if let Some(np) = &raw.not_protocol {
                let np = np.to_string();
                parts.push(match protocol_number(&np) {
                    Some(n) if n == flow.protocol => {
                        Tri::No(format!("notProtocol {np}, the flow is {proto}"))
                    }
                    Some(_) => Tri::Yes,
                    None => Tri::Unknown(format!("notProtocol {np:?} is not one Calico knows")),
                });
            }
            if raw.icmp.is_some() || raw.not_icmp.is_some() {
                parts.push(if matches!(flow.protocol, PROTO_ICMP | PROTO_ICMPV6) {
                    Tri::Unknown(
                        "icmp/notICMP type and code: the flow's ICMP type is not given".into(),
                    )
                } else {
                    Tri::No(format!("icmp match, the flow is {proto}"))
                });
            }
            if raw.http.is_some() {
                parts.push(Tri::Unknown(
                    "http match (application layer policy) is not evaluated offline".into(),
                ));
            }
        }
        parts.extend(self.match_side(&rule.src, &flow.src, "source", raw.map(|r| &r.source)));
        parts.extend(self.match_side(
            &rule.dst,
            &flow.dst,
            "destination",
            raw.map(|r| &r.destination),
        ));
        Tri::all(parts)
    }

    fn match_side(
        &self,
        side: &RuleSide,
        end: &FlowEnd,
        name: &str,
        raw: Option<&resources::EntityRule>,
    ) -> Vec<Tri> {
        let m = self.model;
        let flow = self.flow;
        let is_dst = name == "destination";
        let label = &end.label;
        let mut out = Vec::new();
        // What Felix's selector IP sets hold for this IP: the endpoint and the network sets.
        let labels: Vec<&crate::calico::labels::InheritedLabels> = end
            .endpoint
            .map(|i| &m.endpoints[i].labels)
            .into_iter()
            .chain(end.net_sets.iter().map(|&i| &m.net_sets[i].labels))
            .collect();
        let sa_rule = raw.is_some_and(|r| r.service_accounts.is_some());
        if let Some(pos_raw) = &side.positive_raw {
            let shown =
                selector_fields(side, raw).unwrap_or_else(|| format!("selector `{pos_raw}`"));
            out.push(match &side.positive {
                None => Tri::Unknown(format!("{name} selector {pos_raw:?} does not parse")),
                Some(sel) if labels.iter().any(|l| sel.evaluate(*l)) => Tri::Yes,
                Some(_) if sa_rule && !self.sa_labels_known(end) => Tri::Unknown(format!(
                    "{name} serviceAccounts: the labels of {label}'s service account are not in the bundle"
                )),
                Some(_) if labels.is_empty() => Tri::No(format!(
                    "{name} {shown} cannot match {label}: no endpoint or network set of the bundle holds it"
                )),
                Some(_) => Tri::No(format!("{name} {shown} does not match {label}")),
            });
        }
        if let Some(neg_raw) = &side.negated_raw {
            out.push(match &side.negated {
                None => Tri::Unknown(format!("{name} notSelector {neg_raw:?} does not parse")),
                Some(sel) if labels.iter().any(|l| sel.evaluate(*l)) => {
                    Tri::No(format!("{name} notSelector `{neg_raw}` matches {label}"))
                }
                Some(_) => Tri::Yes,
            });
        }
        if !side.nets.is_empty() {
            let inside = side
                .nets
                .iter()
                .filter_map(|n| parse_net(n))
                .any(|n| n.contains(&end.ip));
            if !inside {
                out.push(Tri::No(format!(
                    "{} is not in {name} nets [{}]",
                    end.ip,
                    side.nets.join(", ")
                )));
            }
        }
        if let Some(n) = side
            .not_nets
            .iter()
            .find(|n| parse_net(n).is_some_and(|net| net.contains(&end.ip)))
        {
            out.push(Tri::No(format!("{} is in {name} notNets {n}", end.ip)));
        }
        if !side.ports.is_empty() {
            out.push(if !has_ports(flow.protocol) {
                Tri::No(format!(
                    "{name} ports apply to TCP, UDP and SCTP; the flow is {}",
                    protocol_name(flow.protocol)
                ))
            } else if !is_dst {
                Tri::Unknown(format!(
                    "source ports {}: the flow's source port is not given",
                    ports_text(&side.ports)
                ))
            } else {
                match flow.dport {
                    None => Tri::Unknown(format!(
                        "destination ports {}: the flow's destination port is not given",
                        ports_text(&side.ports)
                    )),
                    Some(d) if side.ports.iter().any(|p| self.port_matches(p, d, end)) => Tri::Yes,
                    Some(d) => Tri::No(format!(
                        "port {d} is not in destination ports {}",
                        ports_text(&side.ports)
                    )),
                }
            });
        }
        if !side.not_ports.is_empty() && has_ports(flow.protocol) {
            out.push(if !is_dst {
                Tri::Unknown(format!(
                    "source notPorts {}: the flow's source port is not given",
                    ports_text(&side.not_ports)
                ))
            } else {
                match flow.dport {
                    None => Tri::Unknown(format!(
                        "destination notPorts {}: the flow's destination port is not given",
                        ports_text(&side.not_ports)
                    )),
                    Some(d) if side.not_ports.iter().any(|p| self.port_matches(p, d, end)) => {
                        Tri::No(format!(
                            "port {d} is in destination notPorts {}",
                            ports_text(&side.not_ports)
                        ))
                    }
                    Some(_) => Tri::Yes,
                }
            });
        }
        if let Some((ns, svc)) = &side.service {
            out.push(Tri::Unknown(format!(
                "{name} services {ns}/{svc}: service matches are not evaluated offline"
            )));
        }
        out
    }

    /// A numeric port, a range, or a named port the endpoint at this end declares for the
    /// flow's protocol (Felix's named-port IP sets hold `ip,proto:port` of such endpoints).
    fn port_matches(&self, p: &Port, d: u16, end: &FlowEnd) -> bool {
        match p {
            Port::Number(n) => *n == d,
            Port::Range(a, b) => (*a..=*b).contains(&d),
            Port::Named(name) => end.endpoint.is_some_and(|i| {
                let proto = protocol_name(self.flow.protocol);
                self.model.endpoints[i]
                    .ports
                    .iter()
                    .any(|np| &np.name == name && np.protocol == proto && np.port == d)
            }),
        }
    }

    /// Whether the `ksa.` profile labels (`pcsa.*`) of the endpoint at this end are known.
    fn sa_labels_known(&self, end: &FlowEnd) -> bool {
        let Some(i) = end.endpoint else { return true };
        self.model.endpoints[i]
            .labels
            .parents
            .iter()
            .find(|p| p.id.starts_with(SERVICE_ACCOUNT_PROFILE_PREFIX))
            .is_none_or(|p| !p.labels.is_empty())
    }
}

enum Next {
    Go(Pos, Acc),
    Done(Acc),
}

fn apply(
    action: Act,
    hit: PolicyHit,
    next: Pos,
    pass_to: Pos,
    profile: bool,
    mut acc: Acc,
) -> Next {
    let (hit_action, verdict) = match action {
        Act::Allow if profile => (HitAction::ProfileAllow, Some(Verdict::Allow)),
        Act::Allow => (HitAction::Allow, Some(Verdict::Allow)),
        Act::Deny if profile => (HitAction::ProfileDeny, Some(Verdict::Deny)),
        Act::Deny => (HitAction::Deny, Some(Verdict::Deny)),
        Act::Pass if profile => (HitAction::ProfilePass, None),
        Act::Pass => (HitAction::Pass, None),
        Act::Log => (HitAction::Log, None),
        Act::Other(a) => {
            acc.steps.push(PolicyHit {
                action: HitAction::Unknown,
                note: Some(format!("action {a:?} is not one Calico knows")),
                ..hit
            });
            acc.verdict = Verdict::Unknown;
            return Next::Done(acc);
        }
    };
    acc.steps.push(PolicyHit {
        action: hit_action,
        ..hit
    });
    match (verdict, hit_action) {
        (Some(v), _) => {
            acc.verdict = v;
            Next::Done(acc)
        }
        (None, HitAction::Log) => Next::Go(next, acc),
        (None, _) => Next::Go(pass_to, acc),
    }
}

fn check(tier: &str, policy: &str, rule: &PolicyRule, tri: &Tri) -> RuleCheck {
    let (outcome, reason) = match tri {
        Tri::Yes => (RuleOutcome::Match, None),
        Tri::No(r) => (RuleOutcome::NoMatch, Some(r.clone())),
        Tri::Unknown(r) => (RuleOutcome::Unknown, Some(r.clone())),
    };
    RuleCheck {
        tier: tier.to_string(),
        policy: policy.to_string(),
        rule: rule.index,
        rule_line: Some(rule.line),
        action: rule.action.clone(),
        outcome,
        reason,
    }
}

/// The v3 fields that make up a side's positive selector, as written:
/// "selector `app == 'x'` and namespaceSelector `team == 'y'`".
fn selector_fields(side: &RuleSide, raw: Option<&resources::EntityRule>) -> Option<String> {
    fn push(parts: &mut Vec<String>, field: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{field} `{v}`"));
        }
    }
    let mut parts = Vec::new();
    push(&mut parts, "selector", side.selector.as_deref());
    if side.positive_raw.is_some() && side.negated_raw.is_none() {
        // The notSelector was folded into the positive selector.
        push(&mut parts, "notSelector", side.not_selector.as_deref());
    }
    push(
        &mut parts,
        "namespaceSelector",
        side.namespace_selector.as_deref(),
    );
    if let Some(sa) = raw.and_then(|r| r.service_accounts.as_ref()) {
        if !sa.names.is_empty() {
            parts.push(format!("serviceAccounts.names {:?}", sa.names));
        }
        push(
            &mut parts,
            "serviceAccounts.selector",
            sa.selector.as_deref(),
        );
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

fn ports_text(ports: &[Port]) -> String {
    let v: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// The policy name of flow logs: the v1 name (`ns/tier.name`, `tier.name`,
/// `ns/knp.default.name`).
fn flow_log_name(p: &Policy) -> String {
    p.key.v1_name.clone()
}

/// The Calico rule a model rule came from, for the fields the model does not carry
/// (notProtocol, icmp, http, serviceAccounts).
fn raw_rule<'b>(
    model: &Model<'b>,
    policy: &Policy,
    rule: &PolicyRule,
) -> Option<&'b resources::Rule> {
    let r = &model.resources;
    let list = match policy.kind() {
        PolicyKind::NetworkPolicy => &r.network_policies,
        PolicyKind::GlobalNetworkPolicy => &r.global_network_policies,
        PolicyKind::StagedNetworkPolicy => &r.staged_network_policies,
        PolicyKind::StagedGlobalNetworkPolicy => &r.staged_global_network_policies,
        _ => return None,
    };
    let src = list
        .iter()
        .find(|s| s.path == policy.loc.path && s.item.meta.line == policy.loc.line)?;
    let item: &'b resources::CalicoPolicy = src.item;
    let rules = match rule.direction {
        Direction::Ingress => &item.spec.ingress,
        Direction::Egress => &item.spec.egress,
    };
    rules.get(rule.index)
}

/// A profile's rules for one direction, as Felix gets them (selectors not namespaced).
fn profile_plan<'b>(
    model: &Model<'b>,
    profiles: &HashMap<&'b str, usize>,
    name: &str,
    dir: Direction,
) -> ProfilePlan<'b> {
    let found = profiles.get(name).map(|&i| &model.resources.profiles[i]);
    let loc = found.map(|p| p.loc());
    let rules = match found {
        Some(p) if !(p.item.ingress.is_empty() && p.item.egress.is_empty()) => {
            let item: &'b resources::Profile = p.item;
            let list = match dir {
                Direction::Ingress => &item.ingress,
                Direction::Egress => &item.egress,
            };
            ProfileRules::Rules(
                list.iter()
                    .enumerate()
                    .map(|(i, raw)| (profile_rule(raw, dir, i), raw))
                    .collect(),
            )
        }
        _ if name.starts_with(NAMESPACE_PROFILE_PREFIX) => {
            ProfileRules::AllowAll("Calico's Kubernetes namespace profile allows all traffic")
        }
        _ if name == DEFAULT_ALLOW_PROFILE => {
            ProfileRules::AllowAll("Calico's default-allow profile allows all traffic")
        }
        Some(_) => ProfileRules::NoRules,
        None if name.starts_with(SERVICE_ACCOUNT_PROFILE_PREFIX) => ProfileRules::NoRules,
        None => ProfileRules::Missing,
    };
    ProfilePlan {
        name: name.to_string(),
        loc,
        rules,
    }
}

fn profile_rule(raw: &resources::Rule, dir: Direction, index: usize) -> PolicyRule {
    PolicyRule {
        direction: dir,
        index,
        action: raw.action.clone(),
        protocol: raw.protocol.as_ref().map(|p| p.to_string()),
        ip_version: raw.ip_version,
        src: profile_side(&raw.source),
        dst: profile_side(&raw.destination),
        line: raw.line,
    }
}

/// A profile rule side: profiles are global, so selectors get no namespace clause.
fn profile_side(er: &resources::EntityRule) -> RuleSide {
    crate::model::policies::side(er, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(action: HitAction, rule: Option<usize>) -> PolicyHit {
        PolicyHit {
            index: 1,
            tier: "default".into(),
            policy: "demo/p".into(),
            flow_log_name: "demo/default.p".into(),
            action,
            rule,
            rule_line: None,
            path: None,
            line: None,
            note: None,
        }
    }

    #[test]
    fn flow_log_strings_use_minus_one_for_end_of_tier() {
        assert_eq!(
            hit(HitAction::Allow, Some(2)).to_flow_log(),
            "1|default|demo/default.p|allow|2"
        );
        assert_eq!(
            hit(HitAction::EotDeny, None).to_flow_log(),
            "1|default|demo/default.p|deny|-1"
        );
        assert_eq!(
            hit(HitAction::EotPass, None).to_flow_log(),
            "1|default|demo/default.p|pass|-1"
        );
    }

    #[test]
    fn kleene_and_lets_a_no_outweigh_an_unknown() {
        assert_eq!(
            Tri::all(vec![Tri::Unknown("u".into()), Tri::No("n".into())]),
            Tri::No("n".into())
        );
        assert_eq!(
            Tri::all(vec![Tri::Yes, Tri::Unknown("u".into())]),
            Tri::Unknown("u".into())
        );
        assert_eq!(Tri::all(vec![Tri::Yes, Tri::Yes]), Tri::Yes);
        assert_eq!(Tri::all(vec![]), Tri::Yes);
    }

    #[test]
    fn profile_sides_are_not_namespaced_and_keep_not_selectors_apart() {
        let er = resources::EntityRule {
            not_selector: Some("app == 'x'".into()),
            ..Default::default()
        };
        let s = profile_side(&er);
        assert_eq!(s.positive_raw, None);
        assert_eq!(s.negated_raw.as_deref(), Some("app == 'x'"));
        let er = resources::EntityRule {
            selector: Some("role == 'db'".into()),
            ..Default::default()
        };
        let s = profile_side(&er);
        assert_eq!(s.positive_raw.as_deref(), Some("role == 'db'"));
    }
}
