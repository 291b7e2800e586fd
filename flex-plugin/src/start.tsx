// The plugin's start: read and check the configuration, then install each behaviour it asks for.
// A missing or wrong configuration disables the plugin with one console error and leaves Flex as it
// is; nothing is half-installed.
import React from 'react';

import { ActivityConfig, ConfigResult, readConfig, RecoveryConfig } from './config';
import { FlexApi, Logger, ManagerLike } from './flexApi';
import { registerNotices } from './notifications';
import { installAutoAccept } from './recovery/autoAccept';
import { installConferenceCallback } from './recovery/callback';
import { Fetch, installGracefulMarks, newGracefulMarker } from './recovery/graceful';
import { checkOperator } from './recovery/operatorCheck';
import { policyLookup } from './recovery/policies';
import { watchPendingActivity } from './activity/pending';
import { PendingActivityLabel } from './activity/PendingActivityLabel';
import { installSystemActivityGuard, systemActivityMatcher } from './activity/systemActivities';
import { ActivityMenuFilter } from './activity/ActivityMenuFilter';
import { registerExtendWrapup } from './activity/extendWrapup';
import { ExtendWrapupButton } from './activity/ExtendWrapupButton';

export interface StartOptions {
  fetch: Fetch;
  log: Logger;
  /**
   * Check at start that the operator's /flex/ routes are reachable and accept the agent's token,
   * and warn the agent when not (the plugin's entry point sets it; tests of other behaviours leave
   * it off so that their fetch sees only what they test).
   */
  checkOperator?: boolean;
}

export type StartResult = ConfigResult['kind'];

function startRecovery(flex: FlexApi, manager: ManagerLike, cfg: RecoveryConfig, o: StartOptions): void {
  const policyFor = policyLookup(cfg);
  installConferenceCallback(flex, policyFor, o.log);
  installGracefulMarks(flex, manager, policyFor, newGracefulMarker(o.fetch, cfg.gracefulTimeoutMs, o.log), cfg.gracefulTimeoutMs, o.log);
  if (o.checkOperator) {
    void checkOperator(flex, cfg.policies, manager.user?.token ?? '', o.fetch, o.log);
  }
  if (cfg.autoAccept && manager.workerClient) {
    installAutoAccept(flex, manager.workerClient, o.log);
  }
}

function startActivity(flex: FlexApi, manager: ManagerLike, cfg: ActivityConfig, o: StartOptions): void {
  const isSystem = systemActivityMatcher(cfg.systemActivities);
  installSystemActivityGuard(flex, manager, isSystem, cfg.deferWhileBusy, o.log);
  flex.MainHeader.Content.add(<ActivityMenuFilter key="flex-operator-activity-menu-filter" manager={manager} isSystem={isSystem} />);
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

/** start installs the plugin's behaviours; it never throws. */
export function start(flex: FlexApi, manager: ManagerLike, o: StartOptions): StartResult {
  let result: ConfigResult;
  try {
    result = readConfig(manager.serviceConfiguration?.ui_attributes?.custom_data);
  } catch (e) {
    result = { kind: 'invalid', errors: [`reading the configuration failed: ${(e as Error)?.message ?? e}`] };
  }
  if (result.kind === 'disabled') {
    o.log.debug('flex-operator: disabled by custom_data.flexOperator.enabled = false');
    return result.kind;
  }
  if (result.kind === 'invalid') {
    o.log.error(
      `flex-operator: the plugin is disabled: its configuration (Flex ui_attributes.custom_data.flexOperator) is not usable:\n` +
        result.errors.map((e) => `  - ${e}`).join('\n'),
    );
    return result.kind;
  }
  const { config } = result;
  registerNotices(flex);
  if (config.recovery) {
    startRecovery(flex, manager, config.recovery, o);
  }
  if (config.activity) {
    startActivity(flex, manager, config.activity, o);
  }
  return result.kind;
}
