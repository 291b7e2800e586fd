// Which ConferenceRecoveryPolicy protects a task: the one listing the task's workflow.
import { PolicyConfig, RecoveryConfig } from '../config';

export type PolicyLookup = (workflowSid: string | undefined) => PolicyConfig | undefined;

export function policyLookup(cfg: RecoveryConfig): PolicyLookup {
  const byWorkflow = new Map<string, PolicyConfig>();
  cfg.policies.forEach((p) => p.workflowSids.forEach((w) => byWorkflow.set(w, p)));
  return (workflowSid) => (workflowSid ? byWorkflow.get(workflowSid) : undefined);
}

/** isVoiceTask: only calls have a conference to protect. */
export const isVoiceTask = (task: { taskChannelUniqueName?: string } | undefined): boolean =>
  task?.taskChannelUniqueName === 'voice';
