import React from 'react';
import { act, create, ReactTestRenderer } from 'react-test-renderer';

import { ActivityMenuFilter } from '../activity/ActivityMenuFilter';
import { ExtendWrapupButton } from '../activity/ExtendWrapupButton';
import { activityMenuCss, systemActivityMatcher } from '../activity/systemActivities';
import { NoticeId } from '../notifications';
import { fakeFlex, installResolved, recordingLogger, validCustomData, voiceTask } from '../testing/fakeFlex';

const started = (customData = validCustomData()) => {
  const f = fakeFlex(customData);
  const log = recordingLogger();
  installResolved(f.flex, f.manager, { fetch: jest.fn(), log });
  return { ...f, log };
};

const text = (r: ReactTestRenderer): string => {
  const json = r.toJSON();
  if (json === null) return '';
  const flat = (n: any): string => (typeof n === 'string' ? n : (n.children ?? []).map(flat).join(''));
  return Array.isArray(json) ? json.map(flat).join('') : flat(json);
};

const activities = (...names: string[]) =>
  new Map(names.map((name, i) => [`WA${i}`, { sid: `WA${i}`, name, available: true }]));

describe('pending activity', () => {
  const headerLabel = (flex: ReturnType<typeof started>['flex']) => {
    const added = flex.MainHeader.Content.added.find((a) => a.element.key === 'flex-operator-pending-activity');
    if (!added) throw new Error('no pending activity label in the header');
    expect(added.options).toMatchObject({ align: 'end' });
    return added.element;
  };

  it('shows the pending activity the operator keeps on the worker, and follows it', () => {
    const { flex, manager } = started();
    manager.workerClient.attributes = { pendingActivity: 'Break', routing: { skills: [] } };
    let r!: ReactTestRenderer;
    act(() => {
      r = create(headerLabel(flex));
    });
    // The label reads the attribute as it was when the plugin started.
    expect(text(r)).toBe('');
    act(() => manager.workerClient.setAttributes({ pendingActivity: 'Lunch' }));
    expect(text(r)).toBe('Pending activity: Lunch');
    act(() => manager.workerClient.setAttributes({ pendingActivity: '' }));
    expect(r.toJSON()).toBeNull();
  });

  it('shows a pending activity already there when the page loads', () => {
    const f = fakeFlex(validCustomData());
    f.manager.workerClient.attributes = { pendingActivity: 'Break' };
    installResolved(f.flex, f.manager, { fetch: jest.fn(), log: recordingLogger() });
    let r!: ReactTestRenderer;
    act(() => {
      r = create(headerLabel(f.flex as any));
    });
    expect(text(r)).toBe('Pending activity: Break');
    // Already pending at load: not a new deferral, no notice.
    expect(f.flex.Notifications.shown).toEqual([]);
  });

  it('tells the agent when a change is deferred, once per change', () => {
    const { flex, manager } = started();
    manager.workerClient.setAttributes({ pendingActivity: 'Break' });
    manager.workerClient.setAttributes({ pendingActivity: 'Break', other: 1 });
    manager.workerClient.setAttributes({ pendingActivity: 'Offline' });
    manager.workerClient.setAttributes({});
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.ActivityDeferred, NoticeId.ActivityDeferred]);
    expect(flex.Notifications.text(0)).toBe('You will be set to "Break" when your tasks are done.');
    expect(flex.Notifications.text(1)).toBe('You will be set to "Offline" when your tasks are done.');
  });

  it('reads the configured attribute', () => {
    const { flex, manager } = started(validCustomData({ activity: { pendingActivityAttribute: 'deferred' } }));
    manager.workerClient.setAttributes({ pendingActivity: 'Break' });
    expect(flex.Notifications.shown).toEqual([]);
    manager.workerClient.setAttributes({ deferred: 'Break' });
    expect(flex.Notifications.shown).toHaveLength(1);
  });
});

describe('system activities', () => {
  it('refuses the agent a system activity, whatever its case, with a notice', async () => {
    const { flex } = started();
    await flex.Actions.invokeAction('SetActivity', { activityName: 'wrap up', activityAvailable: true });
    const r = await flex.Actions.runBefore('SetActivity', { activityName: 'On a Task, No ACD' });
    expect(r.aborted).toBe(true);
    expect(flex.Notifications.text(0)).toBe('"wrap up" is set automatically; pick another activity.');
    expect(flex.Notifications.shown).toHaveLength(2);
  });

  it('lets other activities, and the plugin-invoked ones, through', async () => {
    const { flex } = started();
    expect(await flex.Actions.runBefore('SetActivity', { activityName: 'Break' })).toEqual({ aborted: false });
    expect(await flex.Actions.runBefore('SetActivity', { activityName: 'Wrap Up', isInvokedByPlugin: true })).toEqual({ aborted: false });
    expect(flex.Notifications.shown).toEqual([]);
  });

  it('knows the activity from its SID when Flex gives only that', async () => {
    const { flex, manager } = started();
    manager.store.state.flex.worker.activities = activities('Available', 'Wrap Up', 'Break');
    expect(await flex.Actions.runBefore('SetActivity', { activitySid: 'WA1' })).toEqual({ aborted: true });
    expect(await flex.Actions.runBefore('SetActivity', { activitySid: 'WA2' })).toEqual({ aborted: false });
  });

  it('tells a supervisor that a busy agent will change when their tasks are done', async () => {
    const { flex, manager } = started();
    manager.store.state.flex.supervisor.workers = [
      { worker: { sid: 'WKbusy', activityName: 'On a Task' }, tasks: [voiceTask()] },
      { worker: { sid: 'WKfree', activityName: 'Available' }, tasks: [] },
    ];
    expect(await flex.Actions.runBefore('SetWorkerActivity', { workerSid: 'WKfree', activityName: 'Break' })).toEqual({
      aborted: false,
    });
    expect(flex.Notifications.shown).toEqual([]);
    expect(await flex.Actions.runBefore('SetWorkerActivity', { workerSid: 'WKbusy', activityName: 'Break' })).toEqual({
      aborted: false,
    });
    expect(flex.Notifications.text(0)).toBe('The agent is busy: they will be set to "Break" when their tasks are done.');
    expect(await flex.Actions.runBefore('SetWorkerActivity', { workerSid: 'WKfree', activityName: 'Wrap Up' })).toEqual({
      aborted: true,
    });
  });

  it('says nothing to the supervisor when the policy lets changes through', async () => {
    const { flex, manager } = started(validCustomData({ activity: { activityChangeWhileBusy: 'Allow' } }));
    manager.store.state.flex.supervisor.workers = [{ worker: { sid: 'WKbusy', activityName: 'Wrap Up' }, tasks: [] }];
    await flex.Actions.runBefore('SetWorkerActivity', { workerSid: 'WKbusy', activityName: 'Break' });
    expect(flex.Notifications.shown).toEqual([]);
  });

  it('hides the system activities of the menu by their position in the list Flex renders', () => {
    const isSystem = systemActivityMatcher(['On a Task', 'Wrap Up']);
    const list = Array.from(activities('Available', 'Reserved', 'on a task', 'Break', 'Wrap Up').values());
    expect(activityMenuCss(list, isSystem)).toBe(
      [
        '[data-testid="activity-menu"] > :nth-child(2 of [role="menuitem"]) { display: none; }',
        '[data-testid="activity-menu"] > :nth-child(4 of [role="menuitem"]) { display: none; }',
      ].join('\n'),
    );
  });

  it('keeps the menu filter in step with the activities in the store', () => {
    const { flex, manager } = started();
    const added = flex.MainHeader.Content.added.find((a) => a.element.key === 'flex-operator-activity-menu-filter');
    expect(added).toBeDefined();
    let r!: ReactTestRenderer;
    act(() => {
      r = create(<ActivityMenuFilter {...added!.element.props} />);
    });
    expect(text(r)).toBe('');
    act(() => manager.store.setState({ flex: { worker: { activities: activities('Available', 'Wrap Up') } } }));
    expect(text(r)).toBe('[data-testid="activity-menu"] > :nth-child(2 of [role="menuitem"]) { display: none; }');
  });
});

describe('extend wrap-up', () => {
  const wrapping = (attributes: any = { from: '+15550001111' }) => {
    const task = voiceTask({ status: 'wrapping', attributes });
    task.setAttributes = jest.fn(async (a: any) => {
      task.attributes = a;
    });
    return task;
  };

  it('sets the task attribute the activity engine reads, keeping the others', async () => {
    const { flex } = started();
    const task = wrapping();
    await flex.Actions.invokeAction('FlexOperatorExtendWrapup', { task });
    expect(task.setAttributes).toHaveBeenCalledWith({ from: '+15550001111', extendedWrapup: true });
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.WrapupExtended]);
    // Twice is once.
    await flex.Actions.invokeAction('FlexOperatorExtendWrapup', { task });
    expect(task.setAttributes).toHaveBeenCalledTimes(1);
  });

  it('uses the configured attribute', async () => {
    const { flex } = started(validCustomData({ activity: { extendedWrapupAttribute: 'moreTime' } }));
    const task = wrapping();
    await flex.Actions.invokeAction('FlexOperatorExtendWrapup', { task });
    expect(task.attributes).toEqual({ from: '+15550001111', moreTime: true });
  });

  it('refuses a task that is not wrapping, and says when TaskRouter refuses', async () => {
    const { flex, log } = started();
    const accepted = { ...voiceTask(), setAttributes: jest.fn() };
    await expect(flex.Actions.invokeAction('FlexOperatorExtendWrapup', { task: accepted })).rejects.toThrow(/is accepted, not wrapping/);
    expect(accepted.setAttributes).not.toHaveBeenCalled();
    await expect(flex.Actions.invokeAction('FlexOperatorExtendWrapup', {})).rejects.toThrow(/needs the task/);
    const task = wrapping();
    task.setAttributes = jest.fn(async () => Promise.reject(new Error('412 Precondition Failed')));
    await expect(flex.Actions.invokeAction('FlexOperatorExtendWrapup', { task })).rejects.toThrow('412');
    expect(flex.Notifications.text(0)).toBe('Could not extend wrap-up: 412 Precondition Failed');
    expect(log.lines.warn).toHaveLength(1);
  });

  it('offers the button on wrapping tasks only, and the button invokes the action', async () => {
    const { flex } = started();
    const added = flex.TaskCanvasHeader.Content.added[0];
    expect(added.options.if({ task: wrapping() })).toBe(true);
    expect(added.options.if({ task: voiceTask() })).toBe(false);

    const task = wrapping();
    let r!: ReactTestRenderer;
    act(() => {
      r = create(<ExtendWrapupButton {...added.element.props} task={task} />);
    });
    expect(text(r)).toBe('Extend wrap-up');
    await act(async () => {
      r.root.findByType('button').props.onClick();
      await new Promise((resolve) => setTimeout(resolve, 0));
    });
    expect(task.attributes.extendedWrapup).toBe(true);
    act(() => {
      r.update(<ExtendWrapupButton {...added.element.props} task={{ ...task }} />);
    });
    expect(text(r)).toBe('Wrap-up extended');
    expect(r.root.findByType('button').props.disabled).toBe(true);
    act(() => {
      r.update(<ExtendWrapupButton {...added.element.props} task={voiceTask()} />);
    });
    expect(r.toJSON()).toBeNull();
  });
});
