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
 * "adaptive" first polls, for a bounded budget.  While the ring has no more
 * processes than the machine has CPUs, the peer we wait for runs on another
 * CPU, so we spin, pausing the CPU between polls.  When processes outnumber
 * CPUs, the peer may be waiting for ours, so between polls we yield the CPU
 * instead; and if a yield keeps us off the CPU for long, the others are busy
 * rather than about to answer, and we stop polling.  A spinning process that
 * finds it was preempted has learnt that the CPUs are busy with other work,
 * and yields from then on.  A round of polling that ends without progress was wasted: the
 * budget is halved and we sleep on the latch until progress is made, as
 * "block" does, so an idle process costs nothing.  A round that pays off
 * doubles the budget again, up to test_shm_mq_ext.spin_budget_us.  A peer
 * that moves data through our queues sets our latch, which starts a round
 * over; since we are not sleeping, its SetLatch() costs it no system call.
 *
 * IDENTIFICATION
 *		src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sched.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/latch.h"

#include "wait.h"

/*
 * Spinning, read the clock every this many polls; a pause is a few dozen
 * nanoseconds, a clock read about as much.  Yielding, every poll is a system
 * call, and the clock is read each time.
 */
#define SPIN_POLLS_PER_CLOCK_READ	16

/*
 * However often peers' activity starts rounds over, poll at most this many
 * budgets' worth between two steps of progress.
 */
#define MAX_ROUNDS_PER_EPISODE	16

/* The least budget that still lets polling prove itself again. */
#define MIN_BUDGET_US	1

/*
 * Being kept off the CPU this long while polling means another process had
 * real work for it.  Yielding, the peers we poll for are busy rather than
 * about to answer, and polling only adds context switches to their work;
 * spinning, we were preempted, and the CPUs are not ours alone.
 */
#define CONTENDED_US	50

static void start_round(test_shm_mq_waiter *waiter);
static bool episode_spent(test_shm_mq_waiter *waiter);
static void sleep_on_latch(test_shm_mq_wait_event event);
static void yield_cpu(test_shm_mq_waiter *waiter);
static bool budget_spent(test_shm_mq_waiter *waiter);

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
 * Strategy names, as test_shm_mq_ext.wait_strategy and test_shm_mq_bench()
 * spell them.
 */
static const char *const strategy_names[] = {
	[TEST_SHM_MQ_WAIT_BLOCK] = "block",
	[TEST_SHM_MQ_WAIT_ADAPTIVE] = "adaptive",
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
	int			strategy;

	for (strategy = 0; strategy < lengthof(strategy_names); strategy++)
	{
		if (strcmp(name, strategy_names[strategy]) == 0)
			return (test_shm_mq_wait_strategy) strategy;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid wait strategy \"%s\"", name),
			 errhint("Valid wait strategies are \"block\" and \"adaptive\".")));
	pg_unreachable();
}

/*
 * The name of a strategy.
 */
const char *
test_shm_mq_wait_strategy_name(test_shm_mq_wait_strategy strategy)
{
	return strategy_names[strategy];
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
 * on a machine with ncpus CPUs online (0 if unknown).
 */
void
test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
						test_shm_mq_wait_strategy strategy,
						int spin_budget_us, int nprocesses, int ncpus)
{
	memset(waiter, 0, sizeof(*waiter));
	waiter->strategy = strategy;
	waiter->yield = ncpus > 0 && nprocesses > ncpus;
	waiter->max_budget_us = spin_budget_us;
	waiter->budget_us = spin_budget_us;
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
	if (test_shm_mq_wait_would_sleep(waiter))
	{
		sleep_on_latch(event);
		return true;
	}

	if (!waiter->polling)
	{
		waiter->polling = true;
		INSTR_TIME_SET_CURRENT(waiter->episode_start);
		start_round(waiter);
	}
	else if (MyLatch->is_set && !waiter->contended &&
			 !episode_spent(waiter))
	{
		/*
		 * Start the round over: a peer that moves data through one of our
		 * queues sets our latch, and a message larger than the queue moves
		 * in many such steps before any call of ours can complete.  But a
		 * peer that only finds its queue full sets it too, so the whole
		 * episode of polling, from the last progress on, stays bounded.
		 */
		start_round(waiter);
	}
	else if (budget_spent(waiter))
	{
		/*
		 * Polling was wasted this time.  Poll for less next time, and sleep
		 * until progress.  Reset the latch first and let the caller look at
		 * its queues once more, so a wake-up sent while we polled is not
		 * lost.
		 */
		waiter->polling = false;
		waiter->sleep_next = true;
		waiter->budget_us = Max(waiter->budget_us / 2, MIN_BUDGET_US);
		ResetLatch(MyLatch);
	}
	else if (waiter->yield)
		yield_cpu(waiter);
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
	return waiter->strategy == TEST_SHM_MQ_WAIT_BLOCK || waiter->sleep_next ||
		waiter->budget_us <= 0;
}

/*
 * Tell the waiter that the last pass over the queues made progress.
 */
void
test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter)
{
	if (waiter->polling)
	{
		/* Polling paid off: allow more of it next time. */
		waiter->polling = false;
		waiter->budget_us = Min(waiter->budget_us * 2, waiter->max_budget_us);
	}
	waiter->sleep_next = false;
}

/*
 * Begin a round of polling.  The reset latch records the next thing a peer
 * does to our queues.
 */
static void
start_round(test_shm_mq_waiter *waiter)
{
	waiter->polls = 0;
	INSTR_TIME_SET_CURRENT(waiter->poll_start);
	ResetLatch(MyLatch);
}

/*
 * Has this episode of polling, since the last progress, gone on too long to
 * start another round?
 */
static bool
episode_spent(test_shm_mq_waiter *waiter)
{
	instr_time	elapsed;

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, waiter->episode_start);
	return (int64) INSTR_TIME_GET_MICROSEC(elapsed) >=
		(int64) waiter->max_budget_us * MAX_ROUNDS_PER_EPISODE;
}

/*
 * Sleep until our latch is set, then service interrupts.
 */
static void
sleep_on_latch(test_shm_mq_wait_event event)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
					 test_shm_mq_wait_event_info(event));
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Give our CPU to any other process that wants it.  If one kept it long, the
 * CPUs are contended: end this round of polling, as if its budget were spent.
 */
static void
yield_cpu(test_shm_mq_waiter *waiter)
{
	instr_time	start;
	instr_time	elapsed;

	INSTR_TIME_SET_CURRENT(start);
	sched_yield();
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	if ((int64) INSTR_TIME_GET_MICROSEC(elapsed) >= CONTENDED_US)
		waiter->contended = true;
}

/*
 * Count a poll, and say whether this round of polling has used its budget.
 *
 * Spinning, a long gap between two clock reads means we were preempted:
 * something else on this machine wanted our CPU, so the ring is not alone on
 * its CPUs after all.  End the round, and poll by yielding from now on.
 */
static bool
budget_spent(test_shm_mq_waiter *waiter)
{
	instr_time	now;
	instr_time	elapsed;

	if (waiter->contended)
	{
		waiter->contended = false;
		return true;
	}

	if (!waiter->yield &&
		++waiter->polls % SPIN_POLLS_PER_CLOCK_READ != 0)
		return false;

	INSTR_TIME_SET_CURRENT(now);
	if (!waiter->yield && waiter->polls > SPIN_POLLS_PER_CLOCK_READ)
	{
		elapsed = now;
		INSTR_TIME_SUBTRACT(elapsed, waiter->last_clock_read);
		if ((int64) INSTR_TIME_GET_MICROSEC(elapsed) >= CONTENDED_US)
		{
			waiter->yield = true;
			return true;
		}
	}
	waiter->last_clock_read = now;

	elapsed = now;
	INSTR_TIME_SUBTRACT(elapsed, waiter->poll_start);
	return (int64) INSTR_TIME_GET_MICROSEC(elapsed) >= waiter->budget_us;
}
