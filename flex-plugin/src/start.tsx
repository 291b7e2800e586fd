// The plugin's start: read its settings, read the operator's configuration for the account
// (operatorConfig.ts), check the two together, then install each behaviour they ask for. Missing or
// wrong settings disable the plugin with one console error and leave Flex as it is; an operator
// that cannot be reached, or that refuses the agent's token, is also shown to the agent, since calls
// are then unprotected. Nothing is half-installed.
import React from 'react';

import { ActivityConfig, ConfigResult, PluginConfig, readConfig, RecoveryConfig } from './config';
import { ConfigNoticeId, registerConfigNotices } from './configNotices';
import { FlexApi, Logger, ManagerLike } from './flexApi';
import { registerNotices } from './notifications';
import { installAutoAccept } from './recovery/autoAccept';
import { installConferenceCallback } from './recovery/callback';
import { Fetch, installGracefulMarks, newGracefulMarker } from './recovery/graceful';
import { checkOperator } from './recovery/operatorCheck';
import { PolicyLookup, policyLookup } from './recovery/policies';
import { watchPendingActivity } from './activity/pending';
import { PendingActivityLabel } from './activity/PendingActivityLabel';
import { installSystemActivityGuard, systemActivityMatcher } from './activity/systemActivities';
import { ActivityMenuFilter } from './activity/ActivityMenuFilter';
import { registerExtendWrapup } from './activity/extendWrapup';
import { ExtendWrapupButton } from './activity/ExtendWrapupButton';
import { ConfigFetch, loadOperatorConfig, MAX_AGE_CAP_SECONDS, resolveConfig, StorageLike } from './operatorConfig';
import { readSettings } from './settings';

export interface StartOptions {
  /** The fetch of the graceful marks. */
  fetch: Fetch;
  log: Logger;
  /**
   * Check at start that the operator's /flex/ routes are reachable and accept the agent's token,
   * and warn the agent when not (the plugin's entry point sets it; tests of other behaviours leave
   * it off so that their fetch sees only what they test).
   */
  checkOperator?: boolean;
}

/** What start needs to read the operator's configuration. */
export interface ConfigSource {
  fetch: ConfigFetch;
  /** Where the answer is cached (window.localStorage); none means every page load asks. */
  storage?: StorageLike;
  /** Milliseconds since the epoch; Date.now when not given. */
  now?: () => number;
  /** Runs refresh every everyMs (window.setInterval); none means the configuration is read once. */
  schedule?: (refresh: () => Promise<void>, everyMs: number) => void;
}

/** unavailable: the operator could not be reached, or refused the token, and no usable answer was cached. */
export type StartResult = ConfigResult['kind'] | 'unavailable';

/** Replaces the policies (and so the protected workflows and their URLs) the installed behaviours use. */
type UpdatePolicies = (cfg: RecoveryConfig) => void;

function startRecovery(flex: FlexApi, manager: ManagerLike, cfg: RecoveryConfig, o: StartOptions): UpdatePolicies {
  // The lookup is replaced when a refreshed configuration lists other policies or workflows.
  let lookup = policyLookup(cfg);
  const policyFor: PolicyLookup = (workflowSid) => lookup(workflowSid);
  installConferenceCallback(flex, policyFor, o.log);
  installGracefulMarks(flex, manager, policyFor, newGracefulMarker(o.fetch, cfg.gracefulTimeoutMs, o.log), cfg.gracefulTimeoutMs, o.log);
  if (o.checkOperator) {
    void checkOperator(flex, cfg.policies, manager.user?.token ?? '', o.fetch, o.log);
  }
  if (cfg.autoAccept && manager.workerClient) {
    installAutoAccept(flex, manager.workerClient, o.log);
  }
  return (next) => {
    lookup = policyLookup(next);
  };
}

function startActivity(flex: FlexApi, manager: ManagerLike, cfg: ActivityConfig, o: StartOptions): void {
  const isSystem = systemActivityMatcher(cfg.systemActivities);
  installSystemActivityGuard(flex, manager, isSystem, cfg.deferWhileBusy, o.log);
  flex.MainHeader.Content.add(<ActivityMenuFilter key="flex-operator-activity-menu-filter" isSystem={isSystem} />);
  if (manager.workerClient) {
    const pending = watchPendingActivity(flex, manager.workerClient, cfg.pendingActivityAttribute, o.log);
    flex.MainHeader.Content.add(<PendingActivityLabel key="flex-operator-pending-activity" pending={pending} />, {
      sortOrder: -1,
      align: 'end',
    });
  }
  registerExtendWrapup(flex, cfg.extendedWrapupAttribute, o.log);
  flex.TaskCanvasHeader.Content.add(
    <ExtendWrapupButton key="flex-operator-extend-wrapup" actions={flex.Actions} attribute={cfg.extendedWrapupAttribute} />,
    { if: (props: any) => props?.task?.status === 'wrapping' },
  );
}

/**
 * install installs the behaviours of a checked configuration; it returns the function that replaces
 * the recovery policies (none when recovery is not installed).
 */
export function install(flex: FlexApi, manager: ManagerLike, config: PluginConfig, o: StartOptions): UpdatePolicies | undefined {
  registerNotices(flex);
  let update: UpdatePolicies | undefined;
  if (config.recovery) {
    update = startRecovery(flex, manager, config.recovery, o);
  }
  if (config.activity) {
    startActivity(flex, manager, config.activity, o);
  }
  return update;
}

const disabledBecause = (what: string, errors: string[]): string =>
  `flex-operator: the plugin is disabled: ${what}:\n` + errors.map((e) => `  - ${e}`).join('\n');

/** start reads the settings and the operator's configuration, then installs; it never throws. */
export async function start(flex: FlexApi, manager: ManagerLike, o: StartOptions & { config: ConfigSource }): Promise<StartResult> {
  let settings: ReturnType<typeof readSettings>;
  let accountSid: unknown;
  let token: unknown;
  try {
    settings = readSettings(manager.serviceConfiguration?.ui_attributes?.custom_data);
    accountSid = manager.serviceConfiguration?.account_sid;
    token = manager.user?.token;
  } catch (e) {
    settings = { kind: 'invalid', errors: [`reading the configuration failed: ${(e as Error)?.message ?? e}`] };
  }
  if (settings.kind === 'disabled') {
    o.log.debug('flex-operator: disabled by custom_data.flexOperator.enabled = false');
    return settings.kind;
  }
  if (settings.kind === 'invalid') {
    o.log.error(disabledBecause('its settings (Flex ui_attributes.custom_data.flexOperator) are not usable', settings.errors));
    return settings.kind;
  }
  registerConfigNotices(flex);
  const unavailable = (message: string): StartResult => {
    o.log.error(disabledBecause('the operator\'s configuration cannot be had', [message]));
    flex.Notifications.showNotification(ConfigNoticeId.Unavailable, { message });
    return 'unavailable';
  };
  if (typeof accountSid !== 'string' || typeof token !== 'string' || token === '') {
    return unavailable('Flex gave the plugin no account SID or no user token');
  }
  const now = o.config.now ?? Date.now;
  const load = await loadOperatorConfig(settings.settings, accountSid, token, {
    fetch: o.config.fetch,
    storage: o.config.storage,
    now,
    log: o.log,
  });
  if (load.kind === 'unreachable' || load.kind === 'refused') {
    return unavailable(load.message);
  }
  if (load.kind === 'stale') {
    flex.Notifications.showNotification(ConfigNoticeId.Stale, {
      minutes: Math.max(1, Math.round((now() - load.fetchedAt) / 60000)),
    });
  }
  const { resolved, errors } = resolveConfig(load.config, settings.settings, o.log);
  const result = errors.length > 0 ? { kind: 'invalid' as const, errors } : readConfig(resolved, { allowInsecureHttp: settings.settings.allowInsecureHttp });
  if (result.kind === 'invalid') {
    // readConfig names the resolved configuration's fields as custom_data's; here they are the answer's.
    const errors = result.errors.map((e) => e.replace(/^custom_data\.flexOperator\b/, "the operator's answer"));
    const message = `the operator's configuration is not usable by this plugin: ${errors.join('; ')}`;
    o.log.error(disabledBecause("the operator's configuration is not usable", errors));
    flex.Notifications.showNotification(ConfigNoticeId.Unavailable, { message });
    return result.kind;
  }
  if (result.kind === 'disabled') {
    return result.kind;
  }
  const update = install(flex, manager, result.config, o);
  if (update && o.config.schedule) {
    // An agent's page stays open for hours: read the configuration again each time its max age
    // runs out, so that a workflow added to a policy gets the callback without a reload. A failed
    // refresh keeps what is installed (the console says why).
    const { settings: current } = settings;
    const everyMs = Math.max(60, Math.min(load.config.maxAgeSeconds, MAX_AGE_CAP_SECONDS)) * 1000;
    o.config.schedule(async () => {
      const again = await loadOperatorConfig(current, accountSid as string, manager.user?.token ?? '', {
        fetch: o.config.fetch,
        storage: o.config.storage,
        now,
        log: o.log,
      });
      if (again.kind !== 'fresh' && again.kind !== 'cached') {
        o.log.warn(`flex-operator: the configuration was not refreshed (${'message' in again ? again.message : again.kind}); keeping the one in use`);
        return;
      }
      const next = resolveConfig(again.config, current, o.log);
      const checked = next.errors.length > 0 ? undefined : readConfig(next.resolved, { allowInsecureHttp: current.allowInsecureHttp });
      if (checked?.kind === 'ok' && checked.config.recovery) {
        update(checked.config.recovery);
      } else {
        o.log.warn('flex-operator: the refreshed configuration is not usable; keeping the one in use');
      }
    }, everyMs);
  }
  return result.kind;
}
