import { fakeFlex, installResolved, recordingLogger, validCustomData, voiceTask, WORKFLOW_OTHER } from '../testing/fakeFlex';

const started = (customData = validCustomData()) => {
  const f = fakeFlex(customData);
  const log = recordingLogger();
  expect(installResolved(f.flex, f.manager, { fetch: jest.fn(), log })).toBe('ok');
  return { ...f, log };
};

describe('conference status callback at accept', () => {
  it('attaches the operator callback, built exactly, to a call on a protected workflow', async () => {
    const { flex } = started();
    const payload = { task: voiceTask({ status: 'pending' }), conferenceOptions: { endConferenceOnExit: false } };
    const { aborted } = await flex.Actions.runBefore('AcceptTask', payload);
    expect(aborted).toBe(false);
    expect(payload.conferenceOptions).toEqual({
      endConferenceOnExit: false,
      conferenceStatusCallback: 'https://flex-operator.example.com/twilio/contact-centre/recovery/conference',
      conferenceStatusCallbackEvent: 'start,end,join,leave,modify,announcement',
    });
  });

  it('uses the policy of the task workflow, with its own namespace and public URL', async () => {
    const { flex } = started({
      flexOperator: {
        publicUrl: 'https://a.example.com/',
        namespace: 'ns-a',
        recovery: {
          policies: [
            { name: 'one', workflowSids: [voiceTask().workflowSid] },
            { name: 'two.b', namespace: 'ns-b', publicUrl: 'https://B.example.com:8443/op/', workflowSids: [WORKFLOW_OTHER] },
          ],
        },
      },
    });
    const one: any = { task: voiceTask() };
    const two: any = { task: voiceTask({ workflowSid: WORKFLOW_OTHER }) };
    await flex.Actions.runBefore('AcceptTask', one);
    await flex.Actions.runBefore('AcceptTask', two);
    expect(one.conferenceOptions.conferenceStatusCallback).toBe('https://a.example.com/twilio/ns-a/one/conference');
    expect(two.conferenceOptions.conferenceStatusCallback).toBe('https://B.example.com:8443/op/twilio/ns-b/two.b/conference');
  });

  it('leaves a call on another workflow alone', async () => {
    const { flex } = started();
    const payload = { task: voiceTask({ workflowSid: WORKFLOW_OTHER }), conferenceOptions: { endConferenceOnExit: true } };
    const before = JSON.parse(JSON.stringify(payload));
    await flex.Actions.runBefore('AcceptTask', payload);
    expect(payload).toEqual(before);
  });

  it('leaves a non-voice task on a protected workflow alone', async () => {
    const { flex } = started();
    const payload: any = { task: voiceTask({ taskChannelUniqueName: 'chat' }) };
    await flex.Actions.runBefore('AcceptTask', payload);
    expect(payload.conferenceOptions).toBeUndefined();
  });

  it('attaches the callback to a reconnect task too (it is on the original workflow)', async () => {
    const { flex } = started();
    const payload: any = {
      task: voiceTask({ attributes: { isReconnect: true, disconnectedConferenceSid: 'CF' + 'a'.repeat(32), conference: {} } }),
    };
    await flex.Actions.runBefore('AcceptTask', payload);
    expect(payload.conferenceOptions.conferenceStatusCallback).toMatch(/\/twilio\/contact-centre\/recovery\/conference$/);
  });

  it('says so when it replaces another callback', async () => {
    const { flex, log } = started();
    const payload: any = { task: voiceTask(), conferenceOptions: { conferenceStatusCallback: 'https://elsewhere.example.com/cb' } };
    await flex.Actions.runBefore('AcceptTask', payload);
    expect(payload.conferenceOptions.conferenceStatusCallback).toMatch(/^https:\/\/flex-operator\.example\.com\//);
    expect(log.lines.warn.join(' ')).toMatch(/replacing the conference status callback https:\/\/elsewhere/);
  });
});
