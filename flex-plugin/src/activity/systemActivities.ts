// System activities (On a Task, Wrap Up, …) are the operator's to set. An agent picking one is
// refused with a notice (Flex's SetActivity action is aborted: the Actions framework is documented),
// and the header's activity menu hides them where it can (activityMenu.ts: Flex documents no way to
// filter that menu). A supervisor moving a busy agent is told the change waits for the agent's tasks.
import { FlexApi, Logger, ManagerLike } from '../flexApi';
import { NoticeId } from '../notifications';

export type IsSystemActivity = (name: string | undefined) => boolean;

/** Activity names are compared without case, as Flex and the operator do. */
export function systemActivityMatcher(names: string[]): IsSystemActivity {
  const set = new Set(names.map((n) => n.toLowerCase()));
  return (name) => name !== undefined && set.has(name.toLowerCase());
}

interface ActivityLike {
  sid: string;
  name: string;
}

/** The workspace's activities as Flex's store holds them (the list its activity menu renders). */
export function storeActivities(manager: ManagerLike): ActivityLike[] {
  const activities = manager.store.getState()?.flex?.worker?.activities;
  if (activities instanceof Map) {
    return Array.from(activities.values());
  }
  return activities && typeof activities === 'object' ? Object.values(activities) : [];
}

/**
 * The activity name of a SetActivity or SetWorkerActivity payload. Flex fills activityName from the
 * SID before the "before" listeners run (the action's documented payload: activitySid,
 * activityName, activityAvailable); the lookup by SID covers a payload that carries only that.
 */
export function payloadActivityName(payload: any, manager: ManagerLike): string | undefined {
  if (typeof payload?.activityName === 'string') {
    return payload.activityName;
  }
  const sid = payload?.activitySid;
  return sid ? storeActivities(manager).find((a) => a.sid === sid)?.name : undefined;
}

export function installSystemActivityGuard(
  flex: FlexApi,
  manager: ManagerLike,
  isSystem: IsSystemActivity,
  deferWhileBusy: boolean,
  log: Logger,
): void {
  // Every SetActivity to a system activity is refused, whoever invokes it: Flex gives its payload
  // no field that tells the agent's click from another plugin's call (isInvokedByPlugin, which this
  // guard once trusted, is never set by Flex 2.17), and the operator never sets activities through
  // the browser, so no invocation of it is lost.
  flex.Actions.addListener('beforeSetActivity', (payload, abort) => {
    const name = payloadActivityName(payload, manager);
    if (isSystem(name)) {
      log.debug(`flex-operator: refused the agent's pick of the system activity "${name}"`);
      abort();
      flex.Notifications.showNotification(NoticeId.SystemActivityRefused, { activityName: name });
    }
  });
  flex.Actions.addListener('beforeSetWorkerActivity', (payload, abort) => {
    const name = payloadActivityName(payload, manager);
    if (isSystem(name)) {
      abort();
      flex.Notifications.showNotification(NoticeId.SystemActivityRefused, { activityName: name });
      return;
    }
    if (!deferWhileBusy || !name) {
      return;
    }
    // A supervisor's change to a busy agent: the operator keeps the agent's system activity and
    // applies this one when the tasks are done.
    const workers: any[] = manager.store.getState()?.flex?.supervisor?.workers ?? [];
    const target = workers.find((w) => w?.worker?.sid === payload?.workerSid);
    if (target && isSystem(target.worker?.activityName)) {
      flex.Notifications.showNotification(NoticeId.SupervisorActivityDeferred, { activityName: name });
    }
  });
}
