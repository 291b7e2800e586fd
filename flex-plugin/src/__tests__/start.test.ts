import { start } from '../start';
import { fakeFlex, recordingLogger, validCustomData, voiceTask } from '../testing/fakeFlex';

describe('start', () => {
  it('installs every behaviour of a valid configuration', () => {
    const { flex, manager } = fakeFlex(validCustomData());
    const log = recordingLogger();
    expect(start(flex, manager, { fetch: jest.fn(), log })).toBe('ok');
    ['beforeAcceptTask', 'beforeHangupCall', 'beforeTransferTask', 'beforeSetActivity', 'beforeSetWorkerActivity'].forEach((e) =>
      expect(flex.Actions.count(e)).toBe(1),
    );
    expect(flex.Actions.registered.has('FlexOperatorExtendWrapup')).toBe(true);
    expect(flex.MainHeader.Content.added).toHaveLength(2);
    expect(flex.TaskCanvasHeader.Content.added).toHaveLength(1);
    expect(log.lines.error).toEqual([]);
  });

  it.each([
    ['missing', undefined, /custom_data.flexOperator is missing/],
    ['malformed', validCustomData({ publicUrl: 'flex-operator.example.com' }), /publicUrl must be an absolute http or https URL/],
    ['of the wrong type', { flexOperator: [1, 2] }, /must be an object/],
  ])('disables itself, with one clear console error, when the configuration is %s', async (_, customData, message) => {
    const { flex, manager } = fakeFlex(customData);
    const log = recordingLogger();
    const fetch = jest.fn();
    expect(start(flex, manager, { fetch, log })).toBe('invalid');
    expect(log.lines.error).toHaveLength(1);
    expect(String(log.lines.error[0][0])).toMatch(/^flex-operator: the plugin is disabled/);
    expect(String(log.lines.error[0][0])).toMatch(message);
    // Nothing is installed: Flex runs as if the plugin were not there.
    expect(flex.Actions.listeners.size).toBe(0);
    expect(flex.Actions.registered.size).toBe(0);
    expect(flex.Notifications.registered.size).toBe(0);
    expect(flex.MainHeader.Content.added).toHaveLength(0);
    expect(flex.TaskCanvasHeader.Content.added).toHaveLength(0);
    const payload: any = { task: voiceTask() };
    await flex.Actions.invokeAction('AcceptTask', payload);
    expect(payload.conferenceOptions).toBeUndefined();
    expect(fetch).not.toHaveBeenCalled();
  });

  it('does not throw when reading the configuration does', () => {
    const { flex, manager } = fakeFlex(undefined);
    Object.defineProperty(manager, 'serviceConfiguration', {
      get() {
        throw new Error('not loaded');
      },
    });
    const log = recordingLogger();
    expect(start(flex, manager, { fetch: jest.fn(), log })).toBe('invalid');
    expect(String(log.lines.error[0][0])).toMatch(/not loaded/);
  });

  it('stays quiet when disabled on purpose', () => {
    const { flex, manager } = fakeFlex(validCustomData({ enabled: false }));
    const log = recordingLogger();
    expect(start(flex, manager, { fetch: jest.fn(), log })).toBe('disabled');
    expect(log.lines.error).toEqual([]);
    expect(flex.Actions.listeners.size).toBe(0);
  });
});
