import React from 'react';
import { act, create, ReactTestRenderer } from 'react-test-renderer';

import { ActivityMenuFilter } from '../activity/ActivityMenuFilter';
import { ExtendWrapupButton } from '../activity/ExtendWrapupButton';
import { hideSystemEntries, HIDDEN_MARK } from '../activity/activityMenu';
import { systemActivityMatcher } from '../activity/systemActivities';
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

  it('lets other activities through', async () => {
    const { flex } = started();
    expect(await flex.Actions.runBefore('SetActivity', { activityName: 'Break' })).toEqual({ aborted: false });
    expect(flex.Notifications.shown).toEqual([]);
  });

  it('refuses a system activity whoever invokes it: Flex marks no invocation as a plugin\'s', async () => {
    const { flex } = started();
    // Flex 2.17 never sets isInvokedByPlugin; a payload that carries it is refused like any other.
    expect(await flex.Actions.runBefore('SetActivity', { activityName: 'Wrap Up', isInvokedByPlugin: true })).toEqual({ aborted: true });
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

  // The menu as Flex 2.17 draws it: a heading, then one menu item per activity but Reserved.
  const menu = (...labels: string[]): HTMLElement => {
    const container = document.createElement('div');
    const items = labels.map((l) => `<div role="menuitem"><span>${l}</span></div>`).join('');
    container.innerHTML = `<div data-testid="activity-menu" role="menu"><div><span>Status</span></div>${items}</div>`;
    return container;
  };
  const visible = (root: HTMLElement): string[] =>
    Array.from(root.querySelectorAll<HTMLElement>('[role="menuitem"]'))
      .filter((i) => i.style.display !== 'none')
      .map((i) => i.textContent ?? '');

  it('hides the menu entries labelled with a system activity, and only those', () => {
    const isSystem = systemActivityMatcher(['On a Task', 'Wrap Up']);
    const root = menu('Available', 'on a task', 'Break', 'Wrap Up', 'Wrap Up later');
    expect(hideSystemEntries(root, isSystem)).toBe(2);
    expect(visible(root)).toEqual(['Available', 'Break', 'Wrap Up later']);
    // An entry Flex adds or moves does not shift what is hidden (the former CSS hid by position).
    const first = root.querySelector('[role="menuitem"]')!;
    first.parentElement!.insertBefore(menu('Lunch').querySelector('[role="menuitem"]')!, first);
    hideSystemEntries(root, isSystem);
    expect(visible(root)).toEqual(['Lunch', 'Available', 'Break', 'Wrap Up later']);
  });

  it('fails harmlessly when the menu is not the one it knows: nothing is hidden', () => {
    const isSystem = systemActivityMatcher(['On a Task']);
    const unmarked = menu('Available', 'On a Task');
    unmarked.querySelector('[data-testid]')!.removeAttribute('data-testid');
    expect(hideSystemEntries(unmarked, isSystem)).toBe(0);
    expect(visible(unmarked)).toEqual(['Available', 'On a Task']);
    // A translated label is not the activity's name: shown (the SetActivity guard still refuses it).
    const translated = menu('Disponible', 'En una tarea');
    expect(hideSystemEntries(translated, isSystem)).toBe(0);
  });

  it('shows again an entry it hid once the activity is no longer a system one', () => {
    const root = menu('Available', 'Break');
    hideSystemEntries(root, systemActivityMatcher(['Break']));
    expect(visible(root)).toEqual(['Available']);
    hideSystemEntries(root, systemActivityMatcher(['On a Task']));
    expect(visible(root)).toEqual(['Available', 'Break']);
    expect(root.querySelectorAll(`[${HIDDEN_MARK}]`)).toHaveLength(0);
  });

  it('hides the entries of a menu Flex draws after the plugin started, until unmounted', async () => {
    const { flex } = started();
    const added = flex.MainHeader.Content.added.find((a) => a.element.key === 'flex-operator-activity-menu-filter');
    expect(added).toBeDefined();
    const root = document.createElement('div');
    let r!: ReactTestRenderer;
    act(() => {
      r = create(<ActivityMenuFilter {...added!.element.props} root={root} />);
    });
    expect(r.toJSON()).toBeNull();
    // The agent opens the menu: Flex renders it.
    root.appendChild(menu('Available', 'Wrap Up').firstElementChild!);
    await until(() => visible(root).length === 1);
    expect(visible(root)).toEqual(['Available']);
    act(() => r.unmount());
    root.appendChild(menu('On a Task').firstElementChild!);
    await flushObservers();
    expect(visible(root)).toEqual(['Available', 'On a Task']);
  });
});

// MutationObserver callbacks run as microtasks after the change; these wait for them.
const flushObservers = () => new Promise<void>((resolve) => setImmediate(resolve));
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i += 1) {
    await flushObservers();
  }
  if (!cond()) throw new Error('condition not met');
}

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
