
# 050_client_disconnect.pl
#
# Proves that when the client of a long call vanishes (psql killed with
# SIGKILL, so the socket closes without a goodbye) and
# client_connection_check_interval is set, the leader notices within that
# interval, logs "connection to client lost", and it and all its workers exit
# well within a second; and that no worker process and no segment of ours is
# left afterwards.  Both test_shm_mq() and test_shm_mq_pipelined() are tried,
# under each wait strategy.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $nworkers          = 3;
my $check_interval_ms = 100;

my %calls = long_calls($nworkers);

my $node            = new_node('client_disconnect');
my $segments_before = dsm_segments($node);

foreach my $strategy (wait_strategies($node))
{
	foreach my $function ('test_shm_mq', 'test_shm_mq_pipelined')
	{
		my $label      = "$function, $strategy wait, client killed";
		my $session    = TestShmMq::Session->new($node);
		my $leader     = $session->pid;
		my $log_offset = -s $node->logfile;

		$session->set_wait_strategy($strategy);
		$session->query(
			"SET client_connection_check_interval = $check_interval_ms");
		$session->send($calls{$function});
		my $workers = wait_for_ring($node, $leader, $nworkers);
		my @pids    = ($leader, values %$workers);

		my $fault_at = now();
		$session->kill_client('KILL');

		check_processes_exit($label, $fault_at, @pids);
		ok( $node->log_contains(
				qr/\[$leader\] (?:\S+ )?FATAL:  connection to client lost/,
				$log_offset),
			"$label: the leader logged that its client was lost");
		is( $node->safe_psql(
				'postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE pid = $leader"),
			'0',
			"$label: the leader is gone from pg_stat_activity");

		$session->close;
		check_no_leftovers($node, $segments_before, $label);
	}
}

$node->stop;
done_testing();
