
# 070_memory.pl
#
# Proves that calls leak no memory in the calling backend.  After a warm-up
# batch, each of these batches, run in one backend as one statement (so in
# one transaction), grows the backend's resident memory (VmRSS in
# /proc/PID/status) by less than 1 MiB:
#
#  - 100 000 calls of test_shm_mq_pipelined(1024, 'x', 1, 0), which create a
#    segment, lay it out, loop a message through the leader's own queue and
#    take it all down again;
#  - 3 000 calls of test_shm_mq(1024, 'x', 1, 1), which also start and stop
#    a worker each (a few milliseconds per call, hence fewer);
#  - 1 000 calls that fail because their worker cannot connect (the session's
#    role was dropped under it), each caught by a PL/pgSQL exception block:
#    the error path, with the worker's error forwarded and the ring cleaned
#    up by subtransaction abort.
#
# The backend's private memory (RssAnon) is reported too.  Afterwards no
# worker process and no segment of ours is left.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $max_growth_kib = 1024;

my $node            = new_node('memory');
my $segments_before = dsm_segments($node);

# The backend's memory figures from /proc, in kB.
sub memory_kib
{
	my ($pid) = @_;
	my %kib;

	open my $fh, '<', "/proc/$pid/status"
	  or die "could not open /proc/$pid/status: $!";
	while (my $line = <$fh>)
	{
		$kib{$1} = $2 if $line =~ /^(VmRSS|RssAnon|RssShmem):\s+(\d+) kB/;
	}
	close $fh;
	return \%kib;
}

# Run a PL/pgSQL loop body n times in one statement; returns the seconds it
# took.  A loop rather than a SELECT over generate_series(): that
# materializes its rows, and malloc keeps some of that memory afterwards,
# which would look like growth.
sub run_loop
{
	my ($session, $body, $n) = @_;
	my $result = $session->query(
		"DO \$\$ BEGIN FOR i IN 1..$n LOOP $body END LOOP; END \$\$",
		timeout => 600);

	is($result->{stderr}, '', "$n times \"$body\": no error");
	return $result->{done_at} - $result->{sent_at};
}

# Warm up, then measure one batch in a session.
sub measure
{
	my ($session, $label, $body, $warm_up, $n) = @_;

	run_loop($session, $body, $warm_up);
	my $before  = memory_kib($session->pid);
	my $seconds = run_loop($session, $body, $n);
	my $after   = memory_kib($session->pid);

	note sprintf(
		'memory: %s [%s]: %.1f s; VmRSS %d -> %d kB (%+d), RssAnon %d -> %d kB (%+d), RssShmem %d -> %d kB (%+d)',
		$label,
		dsm_choice(),
		$seconds,
		$before->{VmRSS},
		$after->{VmRSS},
		$after->{VmRSS} - $before->{VmRSS},
		$before->{RssAnon},
		$after->{RssAnon},
		$after->{RssAnon} - $before->{RssAnon},
		$before->{RssShmem},
		$after->{RssShmem},
		$after->{RssShmem} - $before->{RssShmem});
	cmp_ok($after->{VmRSS} - $before->{VmRSS},
		'<', $max_growth_kib, "$label: VmRSS grew by less than 1 MiB");
	check_no_leftovers($node, $segments_before, $label);
	return;
}

my $session = TestShmMq::Session->new($node);

measure(
	$session,
	'100000 calls of test_shm_mq_pipelined with no workers',
	"PERFORM test_shm_mq_pipelined(1024, 'x', 1, 0);",
	1000, 100000);
measure(
	$session,
	'3000 calls of test_shm_mq with 1 worker',
	"PERFORM test_shm_mq(1024, 'x', 1, 1);",
	200, 3000);
$session->close;

# The error path: a session whose role is gone.  Its workers cannot connect
# as that role, so every call fails; the loop checks each error is that one.
# A dropped role holds no grants, so PUBLIC is granted the call; workers
# connect as the calling role, here the dropped one, and at once, since the
# role's settings say so (test_shm_mq_ext.worker_connect_delay = 0): by
# default a worker of a call this short would never connect.
$node->safe_psql(
	'postgres', q{
	GRANT EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) TO PUBLIC;
	CREATE ROLE memory_dropped LOGIN;
	ALTER ROLE memory_dropped SET test_shm_mq_ext.worker_connect_delay = 0;
});
$session = TestShmMq::Session->new($node, user => 'memory_dropped');
$node->safe_psql('postgres', 'DROP ROLE memory_dropped');
measure(
	$session,
	'1000 calls whose worker fails to start',
	q{BEGIN
		PERFORM test_shm_mq(1024, 'x', 1, 1);
		RAISE 'the call succeeded';
	EXCEPTION WHEN invalid_authorization_specification THEN
		IF SQLERRM <> 'one or more workers failed to start' THEN
			RAISE;
		END IF;
	END;},
	100, 1000);
$session->close;

$node->stop;
done_testing();
