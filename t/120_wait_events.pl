
# 120_wait_events.pl
#
# Proves that pg_stat_activity says what each ring process waits for.  From
# PostgreSQL 17 on each distinct wait has its own wait event; before, all
# show as "Extension".  Each is caught while a process sleeps in it:
#
#   TestShmMqWorkerStartup  a leader waiting for its workers to be ready
#                           (held on a lock on pg_authid)
#   TestShmMqReceive        a worker waiting for a message (its leader
#                           stopped, holding the one message in flight)
#   TestShmMqSend           a worker, and a leader, waiting for room in a
#                           full queue (the next worker stopped)
#   TestShmMqSlot           a leader waiting for a free worker slot
#   TestShmMqWorkerExit     a leader waiting for a worker to exit (stopped)
#   TestShmMqKept           the workers of a kept ring between calls
#   TestShmMqBenchIdle      a leader in test_shm_mq_bench's idle mode
#
# On PostgreSQL 18 the module also gives its name and version, which
# pg_get_loaded_modules() shows.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# Workers connect as they start, so that a lock on pg_authid holds them in
# start-up, and their waits show in pg_stat_activity from the first.
my $node = new_node(
	'wait_events',
	max_worker_processes => 4,
	conf => ['test_shm_mq_ext.worker_connect_delay = 0']);
my $segments_before = dsm_segments($node);
my $named           = $node->pg_version >= 17;
my $control         = TestShmMq::Session->new($node);

# What pg_stat_activity should show for a wait.
sub expected
{
	my ($name) = @_;
	return $named ? "Extension:$name" : 'Extension:Extension';
}

# Poll until the process with this PID shows the expected wait event, and
# assert it did.  What pg_stat_activity shows comes from
# pg_stat_get_activity().
sub check_wait
{
	my ($label, $pid, $name) = @_;
	my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
	my $seen;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	while (1)
	{
		# Not pg_stat_activity, which joins pg_authid: one test locks it.
		$seen = $control->query(
			qq{SELECT wait_event_type || ':' || wait_event
			FROM pg_stat_get_activity($pid)})->{stdout};
		last if $seen eq expected($name) || now() > $deadline;
		pause(0.01);
	}
	is($seen, expected($name), "$label: pg_stat_activity shows " . expected($name));
	return;
}

# The PIDs of a leader's workers, by number, whatever their state.
sub workers_by_number
{
	my ($leader) = @_;
	my %pids = map { /worker (\d+) of/ ? ($1 => (split / /)[0]) : () }
	  worker_processes($node, $leader);
	return \%pids;
}

# Start-up: the workers wait for a lock on pg_authid, so the leader waits
# for them.
{
	my $leader = TestShmMq::Session->new($node);
	my $locker = TestShmMq::Session->new($node);

	$leader->query("SELECT test_shm_mq(1024, 'x', 1, 1)");
	$locker->query('BEGIN');
	$locker->query('LOCK TABLE pg_authid IN ACCESS EXCLUSIVE MODE');
	$leader->send("SELECT test_shm_mq(1024, 'x', 1, 1)");
	check_wait('a leader whose worker is starting',
		$leader->pid, 'TestShmMqWorkerStartup');
	$locker->query('COMMIT');
	is($leader->wait_result->{stderr}, '', 'the call then succeeds');
	$locker->close;
	$leader->close;
}

# Send: a long pipelined call through two workers, worker 2 stopped, so
# that nobody reads worker 1's output: worker 1 fills it and waits to send,
# and the leader, whose copies worker 1 no longer takes, fills its own queue
# and waits to send too.  With the block strategy, every process sleeps as
# soon as it must wait.
{
	my $leader = TestShmMq::Session->new($node);

	$leader->query("SET test_shm_mq_ext.wait_strategy = 'block'");
	$leader->send(
		"SELECT test_shm_mq_pipelined(1024, repeat('x', 100), 2000000000, 2)");
	my $workers = wait_for_ring($node, $leader->pid, 2);
	kill 'STOP', $workers->{2};
	check_wait('a worker whose output queue is full',
		$workers->{1}, 'TestShmMqSend');
	check_wait('a leader whose output queue is full',
		$leader->pid, 'TestShmMqSend');
	kill 'CONT', $workers->{2};
	kill 'INT',  $leader->pid;
	$leader->wait_result;

	# One message in flight, and the leader stopped: once the message has
	# reached it, both workers wait for the next.
	$leader->send("SELECT test_shm_mq(1024, 'x', 2000000000, 2)");
	$workers = wait_for_ring($node, $leader->pid, 2);
	kill 'STOP', $leader->pid;
	check_wait("worker $_ of a ring whose message is with its stopped leader",
		$workers->{$_}, 'TestShmMqReceive')
	  foreach (1, 2);
	kill 'CONT', $leader->pid;
	kill 'INT',  $leader->pid;
	$leader->wait_result;
	$leader->close;
}

# A free slot: of 4, the launcher holds 1 and a long call the other 3.
{
	my $holder = TestShmMq::Session->new($node);
	my $waiter = TestShmMq::Session->new($node);

	$holder->send("SELECT test_shm_mq(1024, 'x', 2000000000, 3)");
	wait_for_ring($node, $holder->pid, 3);
	$waiter->query('SET test_shm_mq_ext.worker_slot_wait = 10000');
	$waiter->send("SELECT test_shm_mq(1024, 'x', 1, 1)");
	check_wait('a leader waiting for a slot', $waiter->pid, 'TestShmMqSlot');
	kill 'INT', $holder->pid;
	$holder->wait_result;
	is($waiter->wait_result->{stderr},
		'', 'the call waiting for a slot then succeeds');
	$holder->close;
	$waiter->close;
}

# A worker that does not exit: the cancelled leader waits for it.
{
	my $leader = TestShmMq::Session->new($node);

	$leader->send("SELECT test_shm_mq(1024, 'x', 2000000000, 2)");
	my $workers = wait_for_ring($node, $leader->pid, 2);
	kill 'STOP', $workers->{2};
	kill 'INT', $leader->pid;
	check_wait('a leader waiting for its workers to exit',
		$leader->pid, 'TestShmMqWorkerExit');
	kill 'CONT', $workers->{2};
	$leader->wait_result;
	$leader->close;
}

# A kept ring's workers between calls, where rings can be kept at all (the
# extension's shared state; 110_kept_ring.pl checks that without it nothing
# is), and the bench's idle time.
{
	my $leader = TestShmMq::Session->new($node);

	if (has_shared_state($node))
	{
		$leader->query('SET test_shm_mq_ext.ring_keepalive = 60000');
		$leader->query("SELECT test_shm_mq(1024, 'x', 1, 2)");
		my $workers = workers_by_number($leader->pid);
		check_wait("worker $_ of a kept ring", $workers->{$_},
			'TestShmMqKept')
		  foreach (1, 2);
		$leader->query('SELECT test_shm_mq_release_ring()');
	}

	$leader->send(
		"SELECT * FROM test_shm_mq_bench(1024, 10, 60000, 1, 'idle', 'block')");
	check_wait('a leader in the idle benchmark',
		$leader->pid, 'TestShmMqBenchIdle');
	kill 'INT', $leader->pid;
	$leader->wait_result;
	$leader->close;
}

# The module's name and version (PostgreSQL 18).
SKIP:
{
	skip 'pg_get_loaded_modules() is new in PostgreSQL 18', 1
	  if $node->pg_version < 18;

	my ($version) = slurp_file("$FindBin::RealBin/../test_shm_mq_ext.control")
	  =~ /^default_version = '([^']+)'/m;
	$control->query('SELECT test_shm_mq_estimate(1024, 1)');
	is( $control->query(
			q{SELECT module_name || ' ' || version FROM pg_get_loaded_modules()
			WHERE file_name LIKE 'test_shm_mq_ext%'})->{stdout},
		"test_shm_mq_ext $version",
		'pg_get_loaded_modules() gives the module name and version');
}

$control->close;
check_no_leftovers($node, $segments_before, 'end', settle => 1);
$node->stop;
done_testing();
