/*-------------------------------------------------------------------------
 *
 * wait.c
 *		Waiting, for leader and workers alike: the strategies' table, the
 *		"block" strategy, and the latch sleep that every wait of ours that
 *		may be interrupted goes through.
 *
 * Both sides drive their queues with non-blocking shm_mq calls and wait
 * through their waiter when a pass made no progress.  "block" sleeps on the
 * process latch at once, as shm_mq's own blocking calls do: a peer that
 * reads or writes a queue sets our latch, so no wake-up is lost.  Every
 * message then costs a sleep and a wake-up, a round trip through the kernel
 * of tens of microseconds, while moving the message itself costs well under
 * one; that is what "adaptive" (wait_adaptive.c) is for.
 *
 * IDENTIFICATION
 *		src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"

#include "compat.h"
#include "test_shm_mq_ext.h"
#include "wait.h"

static bool block_wait(test_shm_mq_waiter *waiter,
					   test_shm_mq_wait_event event);
static void block_init(test_shm_mq_waiter *waiter, int nprocesses,
					   bool leader);
static void block_progress(test_shm_mq_waiter *waiter);
static bool block_would_sleep(test_shm_mq_waiter *waiter);
static int	online_cpus(void);
static void latch_sleep(test_shm_mq_wait_event event, long timeout_ms);

/* "block": the reference design, every message flushed and slept for. */
const test_shm_mq_wait_method test_shm_mq_block_method = {
	.name = "block",
	.batches = false,
	.init = block_init,
	.wait = block_wait,
	.progress = block_progress,
	.would_sleep = block_would_sleep,
};

/* Every strategy, by test_shm_mq_wait_strategy. */
static const test_shm_mq_wait_method *const wait_methods[TEST_SHM_MQ_WAIT_STRATEGIES] = {
	[TEST_SHM_MQ_WAIT_BLOCK] = &test_shm_mq_block_method,
	[TEST_SHM_MQ_WAIT_ADAPTIVE] = &test_shm_mq_adaptive_method,
};

/*
 * The strategies' names as the setting test_shm_mq_ext.wait_strategy takes
 * them; test_shm_mq_bench() parses its argument against the same table.
 */
const struct config_enum_entry test_shm_mq_wait_strategies[] = {
	{"block", TEST_SHM_MQ_WAIT_BLOCK, false},
	{"adaptive", TEST_SHM_MQ_WAIT_ADAPTIVE, false},
	{NULL, 0, false}
};

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
 * A strategy's name, as its method gives it.
 */
const char *
test_shm_mq_wait_strategy_name(test_shm_mq_wait_strategy strategy)
{
	return wait_methods[strategy]->name;
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
 * [L] What a ring made now with strategy would wait by.
 */
void
test_shm_mq_wait_settings_now(test_shm_mq_wait_settings *settings,
							  test_shm_mq_wait_strategy strategy)
{
	settings->strategy = strategy;
	settings->spin_budget_us = test_shm_mq_spin_budget_us;
}

bool
test_shm_mq_wait_settings_equal(const test_shm_mq_wait_settings *a,
								const test_shm_mq_wait_settings *b)
{
	return a->strategy == b->strategy &&
		a->spin_budget_us == b->spin_budget_us;
}

/*
 * [L] Fill in a new ring's shared waiting state, before any worker starts.
 */
void
test_shm_mq_wait_shared_init(test_shm_mq_wait_shared *shared,
							 const test_shm_mq_wait_settings *settings)
{
	shared->strategy = settings->strategy;
	shared->spin_budget_us = settings->spin_budget_us;
	shared->online_cpus = online_cpus();
	pg_atomic_init_u64(&shared->hint, 0);
}

/*
 * The size of the chunk of a ring's segment that holds its processes' wait
 * slots: a cache line each, and room to start the first on a cache line
 * (the chunk itself is only buffer-aligned).
 */
Size
test_shm_mq_wait_slots_size(int nprocesses)
{
	StaticAssertStmt(sizeof(test_shm_mq_wait_slot) <= PG_CACHE_LINE_SIZE,
					 "a wait slot must fit in a cache line");
	return mul_size((Size) nprocesses + 1, PG_CACHE_LINE_SIZE);
}

/*
 * [L] Set up a new ring's wait slots, in a chunk of the size above.
 */
void
test_shm_mq_wait_slots_init(void *chunk, int nprocesses)
{
	int			process;

	memset(chunk, 0, test_shm_mq_wait_slots_size(nprocesses));
	for (process = 0; process < nprocesses; process++)
		pg_atomic_init_u32(&test_shm_mq_wait_slot_of(chunk, process)->asleep,
						   0);
}

/*
 * The wait slot of process number process (0 the leader, k worker k) in
 * that chunk.  A segment is mapped at a page boundary in every process, so
 * the aligned address falls at the same offset in each.
 */
test_shm_mq_wait_slot *
test_shm_mq_wait_slot_of(void *chunk, int process)
{
	char	   *first = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE, chunk);

	return (test_shm_mq_wait_slot *) (first + process * PG_CACHE_LINE_SIZE);
}

/*
 * Prepare one process's waiter for a ring of nprocesses processes, the
 * leader included, under the strategy the ring's shared state names, with
 * its slot.
 */
void
test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
						test_shm_mq_wait_shared *shared,
						test_shm_mq_wait_slot *slot, int nprocesses,
						bool leader)
{
	Assert(shared->strategy >= 0 &&
		   shared->strategy < TEST_SHM_MQ_WAIT_STRATEGIES);
	waiter->method = wait_methods[shared->strategy];
	waiter->shared = shared;
	waiter->slot = slot;
	waiter->counts = &slot->counts;
	waiter->waiting = false;
	waiter->slept = false;
	waiter->private_state = NULL;
	waiter->method->init(waiter, nprocesses, leader);
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
	latch_sleep(event, timeout_ms);
	CHECK_FOR_INTERRUPTS();
}

/*
 * test_shm_mq_sleep() but for servicing interrupts, which is the caller's.
 */
static void
latch_sleep(test_shm_mq_wait_event event, long timeout_ms)
{
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

	if (timeout_ms >= 0)
		events |= WL_TIMEOUT;
	(void) WaitLatch(MyLatch, events, timeout_ms,
					 test_shm_mq_wait_event_info(event));
	ResetLatch(MyLatch);
}

/*
 * A strategy's sleep on the latch: test_shm_mq_sleep(), with the process's
 * slot saying meanwhile that it sleeps, for its sender to see.
 */
void
test_shm_mq_waiter_sleep(test_shm_mq_waiter *waiter,
						 test_shm_mq_wait_event event)
{
	pg_atomic_write_u32(&waiter->slot->asleep, 1);
	latch_sleep(event, -1);
	pg_atomic_write_u32(&waiter->slot->asleep, 0);
	CHECK_FOR_INTERRUPTS();
}

/*
 * How many CPUs are online, as this process first found; 0 if unknown.
 * Finding out reads a file, which a kept ring's calls should not pay for each
 * time.
 */
static int
online_cpus(void)
{
	static int	cpus = -1;

	if (cpus < 0)
		cpus = Max(sysconf(_SC_NPROCESSORS_ONLN), 0);
	return cpus;
}

/* "block" keeps no state. */
static void
block_init(test_shm_mq_waiter *waiter, int nprocesses, bool leader)
{
}

/* "block" waits by sleeping until a peer sets our latch. */
static bool
block_wait(test_shm_mq_waiter *waiter, test_shm_mq_wait_event event)
{
	test_shm_mq_waiter_sleep(waiter, event);
	return true;
}

/* "block" learns nothing from its waits. */
static void
block_progress(test_shm_mq_waiter *waiter)
{
}

/* "block" always sleeps. */
static bool
block_would_sleep(test_shm_mq_waiter *waiter)
{
	return true;
}
