//! # code-mode-conformance
//!
//! The behaviour and escape-attempt suite every code-mode sandbox driver must pass, written
//! once and run against each driver (as `object_store` and `opendal` run one suite against
//! every backend). A driver crate plugs in with one macro call in a test file:
//!
//! ```text
//! code_mode_conformance::conformance_tests!(std::sync::Arc::new(my_driver::MyDriver::new()));
//! ```
//!
//! which expands to one `#[tokio::test]` per case, so `cargo test` reports every case by
//! name. Cases assert behaviour, not speed: where concurrency matters they count calls in
//! flight on the host instead of timing them.
//!
//! The [`Harness`] gives each case fresh contexts with a standard set of host bindings
//! ([`fixtures`]) and the limits a case needs.

#![warn(missing_docs)]

pub mod cases;
pub mod fixtures;
mod harness;
pub mod spans;

pub use harness::{Capabilities, Harness};

/// Expands to one `#[tokio::test]` per conformance case, each running against the driver
/// built by `$driver` (an expression giving `Arc<dyn IsolateDriver>` or `Arc<D>`).
#[macro_export]
macro_rules! conformance_tests {
    ($driver:expr) => {
        $crate::conformance_tests!($driver, $crate::Capabilities::default());
    };
    ($driver:expr, $caps:expr) => {
        $crate::conformance_tests!(@cases $driver, $caps;
            returns_every_json_type,
            no_return_gives_no_value,
            top_level_await,
            typescript_forms,
            syntax_error_reports_line,
            runtime_error_reports_line,
            first_and_last_lines_belong_to_the_program,
            thrown_error_classes,
            odd_thrown_values_are_described,
            error_names_and_messages_are_the_documented_ones,
            tool_input_validation,
            tool_errors_reach_guest_as_message,
            uncaught_tool_error_fails_execution,
            no_argument_passes_empty_object,
            parallel_tool_calls_overlap,
            sequential_tool_calls,
            hundred_parallel_tool_calls,
            console_levels_and_formatting,
            console_caps,
            execution_spans_form_the_documented_tree,
            console_events_are_live,
            events_are_tagged_and_ordered,
            infinite_loop,
            infinite_loop_after_await,
            never_resolving_tool_call,
            never_settling_promise,
            memory_bomb_arrays,
            memory_bomb_strings,
            memory_bomb_array_buffers,
            deep_recursion,
            deep_recursion_at_every_stack_limit,
            value_nesting_limit,
            replaced_promise_then_does_not_break_the_sandbox,
            errors_do_not_expose_the_machinery,
            removed_globals_stay_removed,
            refused_calls_deep_in_a_recursion_keep_the_stack_limit,
            driver_machinery_is_out_of_scope,
            webassembly_memory_cannot_bypass_the_limit,
            long_builtins_stop_at_the_deadline,
            huge_error_messages_are_capped,
            odd_strings_survive,
            lines_follow_ecmascript_line_terminators,
            deeply_nested_code_is_refused,
            tool_call_flood,
            huge_return_value,
            result_limit_counts_utf8_bytes,
            non_json_results,
            absent_host_globals,
            dynamic_import_is_blocked,
            function_constructor_escapes,
            prototype_pollution_is_contained,
            delivery_runs_no_guest_setters,
            inherited_hooks_do_not_change_outcomes,
            overwritten_builtins_do_not_break_the_host,
            host_caused_guest_code_is_under_the_deadline,
            hostile_strings_round_trip,
            state_isolation_between_contexts,
            executions_on_one_context_are_serialized,
            dispose_is_idempotent_and_final,
            hundred_concurrent_contexts,
            next_execution_works_after_failures,
            durable_pause_is_supported_or_refused_by_name,
            approval_runs_nothing_before_the_decision,
            approval_denied_is_a_catchable_error,
            approval_wait_has_its_own_limit,
            two_pending_approvals_resolve_in_any_order,
            approval_wait_does_not_use_the_timeout,
            pending_approval_is_withdrawn_when_the_execution_ends,
            edited_input_is_validated,
            cancellation_reaches_a_waiting_tool,
            unawaited_calls_are_cancelled_at_return,
            an_application_cancels_mid_call,
            limit_phrases_in_guest_text_decide_nothing,
            forged_engine_errors_are_the_programs_own,
            a_tools_engine_like_error_is_the_tools,
            guest_code_during_an_approval_is_charged,
            replaced_intrinsics_change_no_output,
            literals_keep_their_line_terminators,
            every_buffer_path_is_charged,
            stacks_show_only_the_programs_frames,
            console_logs_deep_values_alike,
        );
    };
    (@cases $driver:expr, $caps:expr; $($case:ident),* $(,)?) => {
        /// The shared conformance cases (test names start with `conformance::`).
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = $crate::Harness::with_capabilities($driver, $caps);
                    $crate::cases::$case(&harness).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod registration {
    /// The case names in `src/cases/`: every `pub async fn <name>(h: &Harness)`.
    fn defined() -> Vec<String> {
        let sources = [
            include_str!("cases/approvals.rs"),
            include_str!("cases/forgery.rs"),
            include_str!("cases/cancellation.rs"),
            include_str!("cases/console_events.rs"),
            include_str!("cases/errors.rs"),
            include_str!("cases/escapes.rs"),
            include_str!("cases/lifecycle.rs"),
            include_str!("cases/limits.rs"),
            include_str!("cases/tools.rs"),
            include_str!("cases/typescript.rs"),
            include_str!("cases/values.rs"),
        ];
        let mut names: Vec<String> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter(|rest| rest.contains("(h: &Harness)"))
            .filter_map(|rest| rest.split('(').next())
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// The names `conformance_tests!` runs.
    fn registered() -> Vec<String> {
        let lib = include_str!("lib.rs");
        let start = lib.find("$caps;\n").map(|i| i + "$caps;\n".len());
        let list = start.map(|s| &lib[s..]).unwrap_or_default();
        let list = &list[..list.find(");").unwrap_or(0)];
        let mut names: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// A case that exists runs on every driver, exactly once.
    #[test]
    fn every_case_is_registered_once() {
        let defined = defined();
        let registered = registered();
        assert!(defined.len() > 60, "found only {} cases", defined.len());
        let mut unique = registered.clone();
        unique.dedup();
        assert_eq!(unique, registered, "a case is registered twice");
        let missing: Vec<_> = defined.iter().filter(|n| !registered.contains(n)).collect();
        let unknown: Vec<_> = registered.iter().filter(|n| !defined.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "cases not in conformance_tests!: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "registered names with no case: {unknown:?}"
        );
    }
}
