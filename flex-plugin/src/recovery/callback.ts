// At accept of a call on a protected workflow, attach the operator's conference status callback.
// Flex builds the conference from the browser's accept (the conference instruction of the
// reservation), so this is the only place the callback can be set.
import { FlexApi, Logger } from '../flexApi';
import { conferenceCallbackUrl, CONFERENCE_CALLBACK_EVENTS } from '../routes';
import { isVoiceTask, PolicyLookup } from './policies';

export function installConferenceCallback(flex: FlexApi, policyFor: PolicyLookup, log: Logger): void {
  flex.Actions.addListener('beforeAcceptTask', (payload) => {
    const task = payload?.task;
    if (!isVoiceTask(task)) {
      return;
    }
    const policy = policyFor(task.workflowSid);
    if (!policy) {
      return;
    }
    const options = payload.conferenceOptions ?? {};
    const url = conferenceCallbackUrl(policy);
    if (options.conferenceStatusCallback && options.conferenceStatusCallback !== url) {
      log.warn(
        `flex-operator: replacing the conference status callback ${options.conferenceStatusCallback} of task ${task.sid}: ` +
          `the conference can have one, and the operator needs it`,
      );
    }
    options.conferenceStatusCallback = url;
    options.conferenceStatusCallbackEvent = CONFERENCE_CALLBACK_EVENTS.join(',');
    payload.conferenceOptions = options;
  });
}
