// "Extend wrap-up": sets the task attribute the operator's activity engine reads (default
// extendedWrapup: true), which moves the agent to Extended Wrap Up instead of Wrap Up.
import { FlexApi, Logger } from '../flexApi';
import { NoticeId } from '../notifications';

/** The Flex action the button invokes; other plugins may invoke it too, with { task } or { sid }. */
export const EXTEND_WRAPUP_ACTION = 'FlexOperatorExtendWrapup';

export const isExtended = (task: any, attribute: string): boolean => task?.attributes?.[attribute] === true;

export function registerExtendWrapup(flex: FlexApi, attribute: string, log: Logger): void {
  flex.Actions.registerAction(EXTEND_WRAPUP_ACTION, async (payload: any) => {
    const task = payload?.task;
    if (!task || typeof task.setAttributes !== 'function') {
      throw new Error(`${EXTEND_WRAPUP_ACTION} needs the task`);
    }
    if (task.status !== 'wrapping') {
      throw new Error(`task ${task.sid} is ${task.status}, not wrapping`);
    }
    if (isExtended(task, attribute)) {
      return;
    }
    try {
      await task.setAttributes({ ...task.attributes, [attribute]: true });
      flex.Notifications.showNotification(NoticeId.WrapupExtended);
    } catch (e) {
      log.warn(`flex-operator: could not extend the wrap-up of task ${task.sid}:`, e);
      flex.Notifications.showNotification(NoticeId.WrapupExtendFailed, { message: (e as Error)?.message ?? String(e) });
      throw e;
    }
  });
}
