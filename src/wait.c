/*-------------------------------------------------------------------------
 *
 * wait.c
 *		Waiting for a queue to make progress, for leader and workers alike.
 *
 * Both sides drive their queues with non-blocking shm_mq calls and come here
 * when a pass made no progress.
 *
 * "block" sleeps on the process latch at once, as shm_mq's own blocking
 * calls do; a peer that reads or writes a queue sets our latch, so no wake-up
 * is lost.  Every message then costs a sleep and a wake-up, a round trip
 * through the kernel of tens of microseconds, while moving the message itself
 * costs well under one.
 *
 * "adaptive" polls first, and sleeps on the latch as "block" does once
 * polling stops paying off.  Its rules, how to poll and for how long, are
 * wait_policy.c's, which also says what they make a ring of N processes on C
 * CPUs do; this file gives them a clock (instr_time), the latch, and the
 * scheduler (pg_spin_delay() to spin, sched_yield() to yield).  A peer that
 * moves data through our queues sets our latch; since we are not sleeping
 * while we poll, its SetLatch() costs it no system call.
 *
 * IDENTIFICATION
 *		src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sched.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "storage/latch.h"

#include "wait.h"

/*
 * Spinning, look at the clock every this many polls; a pause is a few dozen
 * nanoseconds, a clock read about as much.  Yielding, every poll is a system
 * call, and we look each time.
 */
#define SPIN_POLLS_PER_CLOCK_READ	16

static int64 now_us(void);
static void yield_cpu(test_shm_mq_waiter *waiter, int64 now);

/* The wait events' names, by test_shm_mq_wait_event. */
static const char *const wait_event_names[TEST_SHM_MQ_WAIT_EVENTS] = {
	[TEST_SHM_MQ_WAIT_EVENT_WORKER_STARTUP] = "TestShmMqWorkerStartup",
	[TEST_SHM_MQ_WAIT_EVENT_SEND] = "TestShmMqSend",
	[TEST_SHM_MQ_WAIT_EVENT_RECEIVE] = "TestShmMqReceive",
	[TEST_SHM_MQ_WAIT_EVENT_KEPT] = "TestShmMqKept",
	[TEST_SHM_MQ_WAIT_EVENT_SLOT] = "TestShmMqSlot",
	[TEST_SHM_MQ_WAIT_EVENT_WORKER_EXIT] = "TestShmMqWorkerExit",
	[TEST_SHM_MQ_WAIT_EVENT_BENCH_IDLE] = "TestShmMqBenchIdle",
};

/* Their wait_event_info in this process, once known. */
static uint32 wait_event_infos[TEST_SHM_MQ_WAIT_EVENTS];

/*
 * The strategies' names, the one place they are spelled: the setting
 * test_shm_mq_ext.wait_strategy takes this table as its options, and
 * test_shm_mq_bench() parses its argument against it.
 */
const struct config_enum_entry test_shm_mq_wait_strategies[] = {
	{"block", TEST_SHM_MQ_WAIT_BLOCK, false},
	{"adaptive", TEST_SHM_MQ_WAIT_ADAPTIVE, false},
	{NULL, 0, false}
};

/*
 * Learn the wait_event_info of every wait event, allocating the names where
 * the server lets us.  Called by the leader as it creates a ring and by each
 * worker as it starts, so that no wait, not even one during an abort, has to
 * do it.
 */
void
test_shm_mq_init_wait_events(void)
{
	int			event;

	for (event = 0; event < TEST_SHM_MQ_WAIT_EVENTS; event++)
	{
		if (wait_event_infos[event] == 0)
			wait_event_infos[event] =
				test_shm_mq_wait_event_new(wait_event_names[event]);
	}
}

/*
 * The wait_event_info to report for a wait.
 */
uint32
test_shm_mq_wait_event_info(test_shm_mq_wait_event event)
{
	return wait_event_infos[event] != 0 ? wait_event_infos[event] :
		PG_WAIT_EXTENSION;
}

/*
 * Map a strategy name to the strategy; reject any other name.
 */
test_shm_mq_wait_strategy
test_shm_mq_parse_wait_strategy(const char *name)
{
	const struct config_enum_entry *entry;
	StringInfoData valid;

	for (entry = test_shm_mq_wait_strategies; entry->name != NULL; entry++)
	{
		if (strcmp(name, entry->name) == 0)
			return (test_shm_mq_wait_strategy) entry->val;
	}

	/* "a", "b" and "c", from the table. */
	initStringInfo(&valid);
	for (entry = test_shm_mq_wait_strategies; entry->name != NULL; entry++)
	{
		if (entry != test_shm_mq_wait_strategies)
			appendStringInfoString(&valid, entry[1].name != NULL ? ", " : " and ");
		appendStringInfo(&valid, "\"%s\"", entry->name);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid wait strategy \"%s\"", name),
			 errhint("Valid wait strategies are %s.", valid.data)));
	pg_unreachable();
}

/*
 * How many CPUs are online, as this process first found; 0 if unknown.
 * Finding out reads a file, which a kept ring's calls should not pay for each
 * time.
 */
int
test_shm_mq_online_cpus(void)
{
	static int	online_cpus = -1;

	if (online_cpus < 0)
		online_cpus = Max(sysconf(_SC_NPROCESSORS_ONLN), 0);
	return online_cpus;
}

/*
 * Prepare a waiter for one ring of nprocesses processes, the leader included,
 * on a machine with ncpus CPUs online (0 if unknown).  spin_budget_us is
 * test_shm_mq_ext.spin_budget_us, the polling budget per process of the ring;
 * sleep_until is the ring's shared hint that the CPUs are busy, which the
 * leader (scout) tests.
 */
void
test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
						test_shm_mq_wait_strategy strategy,
						int spin_budget_us, int nprocesses, int ncpus,
						pg_atomic_uint64 *sleep_until, bool scout)
{
	waiter->strategy = strategy;
	waiter->polls = 0;
	waiter->sleep_until = sleep_until;
	test_shm_mq_policy_init(&waiter->policy,
							strategy == TEST_SHM_MQ_WAIT_ADAPTIVE,
							spin_budget_us, nprocesses, ncpus, scout);
}

/*
 * Wait until a peer may have made progress possible; event says what for,
 * should we sleep.
 *
 * Returns true if we slept on the latch, which is also when the caller should
 * look at anything that can wake it other than its data queues; false if we
 * only polled.  Interrupts are serviced either way.
 */
bool
test_shm_mq_wait(test_shm_mq_waiter *waiter, test_shm_mq_wait_event event)
{
	test_shm_mq_wait_policy *policy = &waiter->policy;
	int64		now;

	if (test_shm_mq_policy_would_sleep(policy))
	{
		if (policy->adaptive && !policy->waiting)
			test_shm_mq_policy_sleeping(policy, now_us());
		test_shm_mq_sleep(event, -1);
		return true;
	}

	if (!policy->waiting)
	{
		now = now_us();
		if (!test_shm_mq_policy_begin(policy, now,
									  (int64) pg_atomic_read_u64(waiter->sleep_until)))
		{
			/* The ring found the CPUs busy: sleep at once. */
			test_shm_mq_sleep(event, -1);
			return true;
		}
		/* The reset latch records the next thing a peer does to our queues. */
		waiter->polls = 0;
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		return false;
	}

	if (test_shm_mq_policy_yields(policy) ||
		++waiter->polls % SPIN_POLLS_PER_CLOCK_READ == 0)
	{
		now = now_us();
		switch (test_shm_mq_policy_look(policy, now, MyLatch->is_set))
		{
			case TEST_SHM_MQ_POLL_ON:
				break;
			case TEST_SHM_MQ_POLL_NEW_ROUND:
				ResetLatch(MyLatch);
				break;
			case TEST_SHM_MQ_POLL_GIVE_UP:

				/*
				 * Reset the latch and let the caller look at its queues once
				 * more before the next call sleeps, so that a wake-up sent
				 * while we polled is not lost.
				 */
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				return false;
		}
		if (test_shm_mq_policy_yields(policy))
			yield_cpu(waiter, now);
		else
			pg_spin_delay();
	}
	else
		pg_spin_delay();

	CHECK_FOR_INTERRUPTS();
	return false;
}

/*
 * Would the next test_shm_mq_wait() sleep on the latch, rather than poll?
 */
bool
test_shm_mq_wait_would_sleep(test_shm_mq_waiter *waiter)
{
	return test_shm_mq_policy_would_sleep(&waiter->policy);
}

/*
 * Tell the waiter that the last pass over the queues made progress.  Cheap
 * when we were not waiting, which is every message but the first of a burst.
 */
void
test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter)
{
	int64		sleep_until;

	if (!waiter->policy.waiting)
		return;

	/*
	 * A wait that polled through, undisturbed, needs no time to learn from,
	 * and this is every message's path: save the clock read.
	 */
	sleep_until = test_shm_mq_policy_progress(&waiter->policy,
											  test_shm_mq_policy_progress_needs_time(&waiter->policy) ?
											  now_us() : 0);
	if (sleep_until != TEST_SHM_MQ_RING_UNCHANGED)
		pg_atomic_write_u64(waiter->sleep_until, (uint64) sleep_until);
}

/*
 * The time now, in microseconds on a clock that only goes forward.
 */
static int64
now_us(void)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	return (int64) INSTR_TIME_GET_MICROSEC(now);
}

/*
 * Sleep until our latch is set, or for at most timeout_ms milliseconds
 * unless that is -1, then service interrupts.  Every sleep of the leader and
 * the workers that may be interrupted comes here; the postmaster's death
 * ends the process.
 */
void
test_shm_mq_sleep(test_shm_mq_wait_event event, long timeout_ms)
{
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

	if (timeout_ms >= 0)
		events |= WL_TIMEOUT;
	(void) WaitLatch(MyLatch, events, timeout_ms,
					 test_shm_mq_wait_event_info(event));
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Give our CPU to any other process that wants it, and tell the policy how
 * long that kept us off it.  now is the time just before.
 */
static void
yield_cpu(test_shm_mq_waiter *waiter, int64 now)
{
	sched_yield();
	test_shm_mq_policy_yielded(&waiter->policy, now_us() - now);
}
