// The pending activity: the operator keeps an activity the agent (or a supervisor) asked for while
// the agent was busy in a worker attribute, and applies it when the tasks are done. The plugin only
// shows it and says when a change was deferred.
import { FlexApi, Logger, WorkerLike } from '../flexApi';
import { NoticeId } from '../notifications';

/** PendingActivity is the pending activity's name as the worker's attributes say, and its changes. */
export interface PendingActivity {
  current(): string | undefined;
  subscribe(listener: (name: string | undefined) => void): () => void;
}

const readPending = (attributes: any, attribute: string): string | undefined => {
  const v = attributes?.[attribute];
  return typeof v === 'string' && v !== '' ? v : undefined;
};

/**
 * watchPendingActivity follows the worker attribute; when a new pending activity appears (a change
 * the operator just deferred), the agent is told.
 */
export function watchPendingActivity(flex: FlexApi, worker: WorkerLike, attribute: string, log: Logger): PendingActivity {
  let pending = readPending(worker.attributes, attribute);
  const listeners = new Set<(name: string | undefined) => void>();
  worker.on('attributesUpdated', (updated: { attributes?: any } | undefined) => {
    const next = readPending(updated?.attributes ?? worker.attributes, attribute);
    if (next === pending) {
      return;
    }
    pending = next;
    if (next !== undefined) {
      log.debug(`flex-operator: activity change to "${next}" deferred until the tasks are done`);
      flex.Notifications.showNotification(NoticeId.ActivityDeferred, { activityName: next });
    }
    listeners.forEach((l) => l(next));
  });
  return {
    current: () => pending,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
