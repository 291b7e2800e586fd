// Package twiliosim is a Twilio simulator: a real HTTP server that speaks
// the part of Twilio's REST API the operator uses, with Twilio's paths, form
// parameters, JSON field names, pagination, error bodies, ETag/If-Match,
// 404s and rate-limit 429s, and that plays Flex and the agents. The
// operator reaches it through the real twilio-go client by pointing
// internal/twilio's Config.BaseURL at Sim.URL(); products are told apart by
// the X-Twilio-Host header (or, failing that, by path).
//
// What it models:
//
//   - TaskRouter v1: workspaces (created with Flex's activities Offline,
//     Available, Unavailable, Break and channels default, voice, chat),
//     activities, task channels, workers (attributes, activity, per-channel
//     capacity and availability, multitasking), task queues (target_workers
//     expressions, max_reserved_workers, FIFO/LIFO), workflows (filters top
//     to bottom, targets with queue inheritance, expression, priority,
//     timeout, order_by, skip_if, known_worker_sid/_friendly_name,
//     default_filter, workflow timeout cancels), tasks (TTL → task.canceled
//     "Task TTL Exceeded", priority then FIFO order, attributes updates
//     re-evaluate a waiting task), reservations (pending → accepted /
//     rejected / timeout / rescinded / canceled, wrapping, completed;
//     reservation timeout moves the worker to the timeout activity;
//     longest-idle-first choice among matching available workers with
//     capacity), the Events list, and the events themselves. Worker lists
//     filter with TargetWorkersExpression over the attributes and the
//     built-in sid, friendly_name, activity_sid and activity_name.
//   - Event Streams v1: webhook sinks (batch_events), sink test and
//     validate (a subscription is refused until the sink is active; for
//     tests about delivery, Sim.ActivateSink skips the test event),
//     subscriptions by type with schema versions, signed CloudEvent
//     deliveries (X-Twilio-Signature over the URL with bodySHA256), batched,
//     retried with backoff on 429/5xx/connection errors and discarded on
//     other 4xx. The legacy workspace EventCallbackUrl (signed form, one try).
//   - Voice (Api 2010): calls, call redirect with TwiML (<Enqueue
//     workflowSid><Task priority timeout>{json}</Task></Enqueue> creates a
//     voice task and the call waits; <Dial><Conference> joins or creates the
//     named conference; Say, Play, Pause, Hangup, Reject, Leave), conferences
//     (init, in-progress, completed; ends when a participant with
//     endConferenceOnExit leaves or the last one leaves; end and announce
//     through the API), participants (label, hold, muted, coaching,
//     endConferenceOnExit; create to dial out, delete to kick), signed
//     conference status callbacks with SequenceNumber, Timestamp (RFC 2822),
//     ParticipantLabel, Coaching, EndConferenceOnExit,
//     ReasonParticipantLeft, ParticipantCallStatus, ReasonConferenceEnded,
//     each sent once, as Twilio sends it: a callback answered 429 or 5xx,
//     or whose connection fails, is lost (counted as Dropped), so a test
//     cannot pass on a second delivery Twilio never makes. Redelivery is
//     the opt-in fault RetryConferenceCallbacks.
//   - Flex and its agents (Go methods and /sim/ HTTP): Accept bridges the
//     waiting caller and the agent in a conference named after the task and
//     sets the task's conference attribute; whenever two or fewer
//     non-coaching parties remain Flex sets the agent legs'
//     endConferenceOnExit to true, and with more to false
//     (participant-modify on each change); an agent leg that
//     leaves moves its reservation to wrapping; RefreshPage, Hangup (Flex
//     ends the conference via the API with two parties, else removes the
//     leg), Wrapup, Complete, WarmTransfer, Monitor (coaching leg),
//     DialThirdParty, CustomerHangup, SetWorkerActivity, PlaceCall.
//   - IAM: Flex token validation for tokens made by IssueFlexToken.
//   - Faults: latency, bursts of 429/5xx with Retry-After, duplicated and
//     reordered webhook delivery, conference callbacks held back, dropped
//     or (unlike Twilio) retried; a rate limit; a state Snapshot and Dump.
//   - Time: an injectable Clock plus Advance, which fires reservation
//     timeouts, task TTLs and workflow target timeouts in order. With the
//     default frozen clock nothing times out unless a test advances it.
//
// What it does not model (known differences from Twilio):
//
//   - A reservation accepted through REST without Instruction=conference is
//     only accepted: the caller stays in the queue, as on Twilio. Accept and
//     Instruction=conference bridge the call.
//   - Assignment callbacks (AssignmentCallbackUrl is stored, never called),
//     reservation instructions other than conference (dequeue, call,
//     redirect, supervise), TaskQueue reservation/assignment activities,
//     RoutingTarget, VirtualStartTime, task creation straight into a
//     TaskQueueSid, statistics endpoints, workspace-level
//     PrioritizeQueueOrder across queues (tasks are ordered by priority then
//     time in queue everywhere), the taskrouter.currentTime family of
//     variables, task-queue.timeout events.
//   - A worker who rejected a task is not offered it again within the same
//     routing step (Twilio may re-offer it). A step timeout that passes while
//     an offer is pending takes effect when that offer ends.
//   - Calls answer at once: no ringing, busy, no-answer or failed dial-outs,
//     no early media, no call status callbacks, no TwiML fetched from a URL
//     (Url parameters are refused; give Twiml), no plain <Enqueue> queues,
//     no <Dial> to numbers, <Gather>, <Record> or <Redirect>. Announcements
//     complete at once (announcement-end, never announcement-fail). Speaker
//     events are never sent.
//   - Webhook connection overrides (a #rc=…&rp=… fragment on a callback
//     URL) are not read. Twilio's documented default allows one retry of a
//     connection that cannot be made; the simulator makes none, the
//     stricter assumption: what works with one attempt works with two.
//   - Event Streams: only webhook sinks, always POSTed (a sink's GET method
//     is accepted but ignored), no sink throttling, no 4-hour retry window
//     (DeliveryMaxAttempts instead), Voice event types can be subscribed to
//     but are never sent.
//   - Conference Event Streams, Voice Insights, recordings, Sync, Studio.
//   - Flex internals beyond those listed: its conference participant labels
//     ("customer", "worker", "worker-2", "supervisor", "external") are the
//     simulator's choice; Flex UI actions are applied instantly, without the
//     browser's latency.
//   - Completed and canceled tasks are deleted 15 simulated minutes after
//     they end (task.system-deleted), as Twilio does; calls and conferences
//     are kept for the simulator's life.
//   - Error codes other than 20001 (bad parameter), 20003 (authentication),
//     20404, 20412 (If-Match) and 20429 are approximations.
package twiliosim
