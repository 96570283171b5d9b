/*-------------------------------------------------------------------------
 *
 * wait_policy.c
 *		The rules of the adaptive wait strategy, as pure functions of time.
 *
 * A process in a ring of P processes (N workers and the leader) waits, for
 * each message, about as long as the message takes to travel round the rest
 * of the ring.  While every process polls, that trip is P hops of well under
 * a microsecond each; but every process that sleeps adds its wake-up, tens of
 * microseconds, to the trip of every other.  So in a ring, waiting is not
 * each process's own affair: a rule that lets one process sleep when its
 * wait was long lengthens the others' waits, and if they then sleep too, the
 * ring settles with everyone asleep and polling paid on top of each wake-up.
 * The rules below are made so that this cannot last while the ring's
 * processes each have a CPU.
 *
 * For a ring of P processes on a machine with C CPUs online:
 *
 * 1. How to poll.  With P <= C, each process can have a CPU of its own, and
 *	  polls by spinning.  With P > C it polls by yielding its CPU, since the
 *	  peer it waits for may need it.  A spinner that finds it was kept off its
 *	  CPU (a gap of TEST_SHM_MQ_CONTENDED_US between two looks at the clock)
 *	  shares its CPUs with other work for now, and polls by yielding for its
 *	  next YIELD_WAITS_FIRST waits: a yield lets the scheduler run the peer it
 *	  waits for, where a spinner would hold the CPU to the end of its time
 *	  slice.  Then it spins again; preempted again, it yields for twice as
 *	  many waits (up to YIELD_WAITS_MAX), and a wait that spins through
 *	  undisturbed starts the count over.  So a process that once met other
 *	  work spins again once it has gone, and one that meets it again and
 *	  again pays for a spin that finds it less and less often.
 *
 * 2. How long at most.  No wait polls longer than the ceiling, the
 *	  per-process budget (test_shm_mq_ext.spin_budget_us) times P: a trip
 *	  round a larger ring takes proportionally longer.  After that the
 *	  process sleeps on its latch until a peer sets it, so an idle process
 *	  costs one ceiling of CPU time, then nothing.
 *
 * 3. How long this time: the budget, learnt from the waits so far.
 *	  - It starts at the per-process budget.
 *	  - A wait that polled until progress doubles it, up to the ceiling.
 *	  - A wait that polled for the whole budget without progress halves it
 *		(to no less than 1 us), and the process sleeps.  Short of CPUs
 *		(P > C), one that polled in vain at the least budget also sleeps at
 *		once for its next 8 waits, as after a contended yield (below): each
 *		poll there is a yield that takes a CPU from the process it waits
 *		for.
 *	  - A yield that kept it off the CPU for TEST_SHM_MQ_CONTENDED_US ends
 *		the polling and halves the budget too, and the process sleeps at
 *		once, without a poll, for its next 8 waits (twice as many each time
 *		it happens again, up to 1024, and 8 again once a wait polls through
 *		undisturbed): a yield that lets other work run costs a time slice.
 *	  - Such yields in two polling waits in a row mean that the CPUs are
 *		busy with other work, which polling only delays, and not a blip:
 *		the process tells the whole ring, through its header, to sleep at
 *		once.  Every process then begins its waits asleep, without a single
 *		poll, so the ring learns once what each process would have paid to
 *		learn alone.  Only the leader, the ring's scout, tries polling
 *		again, by yielding, after 1 ms, then after twice as long each time
 *		it finds the CPUs still busy (up to 1 s); once it polls
 *		undisturbed, whether or not its wait ended while it polled, it wakes
 *		the ring to polling again.  A spinner's preemption alone proves less: the kernel's own
 *		work, or another guest's on a virtual machine, preempts now and
 *		then, and such a process only yields for a while, as rule 1 says.
 *	  - But a process of a ring with a CPU each (P <= C) that slept, and
 *		then found the whole wait shorter than the ceiling, learns that the
 *		ring was busy, only slower because someone slept: it raises its
 *		budget to twice that wait, so that it polls through the next one.
 *		This is what makes a ring whose processes have CPUs of their own
 *		climb out of everyone sleeping: the more of them sleep, the longer
 *		the trip, and the longer the others poll, until all poll again.  A
 *		wait longer than the ceiling means the ring is idle, and teaches
 *		nothing.
 *
 * 4. A peer that moves data through our queues sets our latch.  Seeing it
 *	  set starts the budget over, since a message larger than a queue moves
 *	  in many such steps before a call of ours can complete; but no wait
 *	  polls for more than MAX_ROUNDS_PER_WAIT ceilings in all.
 *
 * What follows: with P <= C and a trip shorter than the ceiling, the ring
 * converges to every process polling, each trip costing P hops; whatever
 * stalls it (a preemption, a process that slept), the next trip teaches the
 * others to poll through it.  With P > C it polls by yielding, which pays
 * while the other processes are the ring's own.  With CPUs busy with other
 * work, yields are contended, each process and then the whole ring sleeps at
 * once, and the ring converges to sleeping, as "block" does.
 * t/model/ring_model.c runs these rules in a simulated ring.
 *
 * IDENTIFICATION
 *		src/wait_policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "c.h"

#include "wait_policy.h"

/*
 * The least budget: one microsecond still lets a wait poll through a trip
 * round a small ring of polling processes, and so lets polling prove itself
 * again after it was halved to nothing.
 */
#define MIN_BUDGET_US			1

/*
 * No wait polls longer than this many ceilings, however often woken: a
 * message of up to this many queues' worth moves through a small queue
 * without its reader sleeping, while one wait costs at most this many
 * ceilings of CPU time.
 */
#define MAX_ROUNDS_PER_WAIT		16

/*
 * Contended waits in a row that show the CPUs busy, not a blip: one may be a
 * timer tick, another guest's turn on a virtual CPU, or a daemon waking up;
 * two in a row, with polling in between, rarely are.
 */
#define CONTENDED_WAITS_BUSY	2

/*
 * After a preempted spin, waits a process polls by yielding: first, at most.
 * A preemption costs the peer up to a time slice, milliseconds, while a
 * yielding poll costs a system call, about a microsecond: 64 waits of a
 * ping-pong are some tens of microseconds, and a spin that is preempted
 * again every 65536 waits costs a few percent at worst.
 */
#define YIELD_WAITS_FIRST		64
#define YIELD_WAITS_MAX			65536

/*
 * After a contended yield, waits a process sleeps at once: first, at most.
 * A contended yield costs a time slice; eight waits that sleep at once cost
 * a wake-up each, tens of microseconds, well under a slice, and 1024 of them
 * bound what a standing load costs between tries.
 */
#define SLEEP_WAITS_FIRST		8
#define SLEEP_WAITS_MAX			1024

/*
 * How long the ring sleeps at once after contended waits show the CPUs
 * busy: first, at most.  A millisecond is a few time slices of a busy CPU;
 * doubling to a second makes a load that lasts cost the scout one failed
 * try a second.
 */
#define SLEEP_FOR_FIRST_US		1000
#define SLEEP_FOR_MAX_US		1000000

/*
 * Prepare the rules for one process of a ring of nprocesses processes, the
 * leader included, on a machine with ncpus CPUs online (0 if unknown).
 * budget_per_process_us is test_shm_mq_ext.spin_budget_us; zero means never
 * poll.  scout is set for the leader.
 */
void
test_shm_mq_policy_init(test_shm_mq_wait_policy *policy,
						int budget_per_process_us, int nprocesses, int ncpus,
						bool scout)
{
	memset(policy, 0, sizeof(*policy));
	policy->short_of_cpus = ncpus > 0 && nprocesses > ncpus;
	policy->scout = scout;
	policy->ceiling_us = (int64) budget_per_process_us * Max(nprocesses, 1);
	policy->budget_us = budget_per_process_us;
	policy->sleep_for_us = SLEEP_FOR_FIRST_US;
	policy->sleep_backoff = SLEEP_WAITS_FIRST;
	policy->yield_backoff = YIELD_WAITS_FIRST;
}

/*
 * Should the process sleep now rather than poll?
 */
bool
test_shm_mq_policy_would_sleep(const test_shm_mq_wait_policy *policy)
{
	return policy->budget_us <= 0 ||
		(policy->waiting && !policy->polling);
}

/*
 * Should the process poll by yielding its CPU, rather than by spinning?  A
 * scout always yields: a yield that other work takes is what tells busy CPUs
 * from free ones, where a spinner's preemption proves less (rule 1).
 */
bool
test_shm_mq_policy_yields(const test_shm_mq_wait_policy *policy)
{
	return policy->short_of_cpus || policy->yield_waits > 0 ||
		policy->scouting;
}

/*
 * A wait begins at now, for a process that would poll.  ring says what the
 * ring's shared hint says: while its processes sleep at once, so does this
 * one, unless it is the scout and the ring has slept long enough.  Returns
 * true if the wait begins by polling, and the caller resets its latch, so
 * that the latch records the next thing a peer does to its queues; false if
 * the process sleeps now.
 */
bool
test_shm_mq_policy_begin(test_shm_mq_wait_policy *policy, int64 now,
						 test_shm_mq_ring_sleep ring)
{
	policy->waiting = true;
	policy->wait_start = now;
	policy->contended = false;
	if (policy->sleep_waits > 0 || ring == TEST_SHM_MQ_RING_SLEEPS ||
		(ring == TEST_SHM_MQ_RING_SLEPT_ENOUGH && !policy->scout))
	{
		policy->polling = false;
		policy->spinning = false;
		policy->slept = true;
		policy->ring_asleep = true;
		return false;
	}
	policy->scouting = ring != TEST_SHM_MQ_RING_POLLS;
	policy->spinning = !test_shm_mq_policy_yields(policy);
	policy->polling = true;
	policy->slept = false;
	policy->ring_asleep = false;
	policy->round_start = now;
	policy->last_look = now;
	return true;
}

/*
 * The process sleeps at now without having polled: the policy says so from
 * the start of the wait.  (Once polling gives up, the wait counts as slept
 * already.)
 */
void
test_shm_mq_policy_sleeping(test_shm_mq_wait_policy *policy, int64 now)
{
	if (!policy->waiting)
	{
		policy->waiting = true;
		policy->wait_start = now;
	}
	policy->polling = false;
	policy->slept = true;
	policy->ring_asleep = false;
}

/*
 * A polling process looks at the clock: it is now, and its latch is set or
 * not.  Says whether to poll on, start a new round, or give up and sleep.
 */
test_shm_mq_poll_verdict
test_shm_mq_policy_look(test_shm_mq_wait_policy *policy, int64 now,
						bool latch_set)
{
	bool		preempted = false;

	if (!test_shm_mq_policy_yields(policy) &&
		now - policy->last_look >= TEST_SHM_MQ_CONTENDED_US)
	{
		/* Kept off our CPU: it is not ours alone, for now. */
		preempted = true;
		policy->spinning = false;
		policy->yield_waits = policy->yield_backoff;
		policy->yield_backoff = Min(policy->yield_backoff * 2,
									YIELD_WAITS_MAX);
	}
	policy->last_look = now;

	if (!preempted && !policy->contended && latch_set &&
		now - policy->wait_start < policy->ceiling_us * MAX_ROUNDS_PER_WAIT)
	{
		policy->round_start = now;
		return TEST_SHM_MQ_POLL_NEW_ROUND;
	}

	if (preempted || policy->contended ||
		now - policy->round_start >= policy->budget_us)
	{
		/*
		 * Polling was wasted this time: poll for less next time.  Short of
		 * CPUs, every poll is a yield that takes a CPU from the process we
		 * wait for, so one wasted at the least budget sleeps at once for a
		 * while, as a contended wait does (rule 3).
		 */
		if (policy->short_of_cpus && policy->budget_us <= MIN_BUDGET_US)
		{
			policy->sleep_waits = policy->sleep_backoff;
			policy->sleep_backoff = Min(policy->sleep_backoff * 2,
										SLEEP_WAITS_MAX);
		}
		policy->budget_us = Max(policy->budget_us / 2, MIN_BUDGET_US);
		policy->polling = false;
		policy->slept = true;
		return TEST_SHM_MQ_POLL_GIVE_UP;
	}
	return TEST_SHM_MQ_POLL_ON;
}

/*
 * A yield took this long.  Kept off the CPU that long, the process found it
 * wanted by other work: its next look gives up.  Returns whether it did.
 */
bool
test_shm_mq_policy_yielded(test_shm_mq_wait_policy *policy, int64 took)
{
	if (took < TEST_SHM_MQ_CONTENDED_US)
		return false;
	policy->contended = true;
	return true;
}

/*
 * Does test_shm_mq_policy_progress() need the time?  Not for a wait that
 * polled through undisturbed; the caller may pass 0 then.
 */
bool
test_shm_mq_policy_progress_needs_time(const test_shm_mq_wait_policy *policy)
{
	return policy->slept || policy->contended || policy->scouting;
}

/*
 * The process made progress at now: learn from the wait that ended, if any.
 * Returns what the ring is to do: sleep at once for that many microseconds
 * from now, if this wait found the CPUs busy; poll again (0) if the scout
 * found them free; else TEST_SHM_MQ_RING_UNCHANGED.
 */
int64
test_shm_mq_policy_progress(test_shm_mq_wait_policy *policy, int64 now)
{
	int64		waited = now - policy->wait_start;
	int64		ring_sleep_us = TEST_SHM_MQ_RING_UNCHANGED;
	bool		scouting;

	if (!policy->waiting)
		return TEST_SHM_MQ_RING_UNCHANGED;
	scouting = policy->scouting;
	policy->waiting = false;
	policy->polling = false;
	policy->scouting = false;

	/* Yielding for a while after a preemption: one wait less of it. */
	if (policy->yield_waits > 0)
		policy->yield_waits--;
	else if (policy->spinning && !policy->slept)
		policy->yield_backoff = YIELD_WAITS_FIRST;

	if (policy->ring_asleep)
	{
		/* Slept at once: nothing learnt. */
		if (policy->sleep_waits > 0)
			policy->sleep_waits--;
		return TEST_SHM_MQ_RING_UNCHANGED;
	}

	if (policy->contended)
	{
		/*
		 * We were kept off the CPU for long.  Once may be a blip: we only
		 * poll for less, and sleep at once for a few waits.  Twice in a row,
		 * or while scouting, the CPUs are busy, and polling only delays the
		 * ring: it sleeps at once for a while, longer each time the scout
		 * finds them busy again.
		 */
		policy->contended = false;
		policy->budget_us = Max(policy->budget_us / 2, MIN_BUDGET_US);
		policy->sleep_waits = policy->sleep_backoff;
		policy->sleep_backoff = Min(policy->sleep_backoff * 2,
									SLEEP_WAITS_MAX);
		if (++policy->contended_waits < CONTENDED_WAITS_BUSY && !scouting)
			return TEST_SHM_MQ_RING_UNCHANGED;
		ring_sleep_us = policy->sleep_for_us;
		policy->sleep_for_us = Min(policy->sleep_for_us * 2,
								   SLEEP_FOR_MAX_US);
		return ring_sleep_us;
	}
	policy->contended_waits = 0;
	if (scouting)
	{
		/* The scout polled undisturbed: the CPUs are free again. */
		ring_sleep_us = 0;
		policy->sleep_for_us = SLEEP_FOR_FIRST_US;
	}

	if (!policy->slept)
	{
		/* Polling paid off: allow more of it next time. */
		policy->budget_us = Min(policy->budget_us * 2, policy->ceiling_us);
		policy->sleep_for_us = SLEEP_FOR_FIRST_US;
		policy->sleep_backoff = SLEEP_WAITS_FIRST;
	}
	else if (!policy->short_of_cpus && waited < policy->ceiling_us)
	{
		/*
		 * We slept through a wait short enough to poll through: the ring was
		 * busy, only slower for someone's sleeping, ours perhaps.  Poll
		 * through such a wait next time.
		 */
		policy->budget_us = Min(Max(policy->budget_us, 2 * waited),
								policy->ceiling_us);
	}
	return ring_sleep_us;
}
