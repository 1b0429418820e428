import { Etcd3 } from 'etcd3';
import { startProvider } from './fleet.js';

/*
 * One simulated provider in a process of its own, for bench:registry's join and leave: it
 * registers provider number argv[3] on etcd endpoint argv[2] with a 2 s lease, prints "ready",
 * and keeps its lease alive until it is SIGKILLed.
 */
const [endpoint, index] = process.argv.slice(2);
const client = new Etcd3({ hosts: endpoint! });
await startProvider(client, '/shuttle', Number(index), 2);
console.log('ready');
setInterval(() => {}, 60_000);
