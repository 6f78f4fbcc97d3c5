// What every figure group receives from the orchestration (bench/run.ts).
import type { BenchDatabase } from './database.js'
import type { Plan } from './plan.js'
import type { NodeProcess } from './processes.js'
import type { Report } from './report.js'
import type { Population, Seeder } from '../seed.js'

export interface BenchContext {
  plan: Plan
  report: Report
  db: BenchDatabase
  seeder: Seeder
  population: Population
  /** The messenger server under test. */
  server: NodeProcess
  log(line: string): void
}
