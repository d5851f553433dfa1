// The peer: the Neo4j GraphQL Library on Apollo Server (standalone, Node's http server).
//   NEO4J_URI=bolt://127.0.0.1:7687 PORT=4000 MODEL=cypher|relationship node server.mjs
import { readFileSync } from "node:fs";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { Neo4jGraphQL } from "@neo4j/graphql";
import neo4j from "neo4j-driver";

const model = process.env.MODEL ?? "cypher";
const typeDefs = readFileSync(new URL(`./schema-${model}.graphql`, import.meta.url), "utf8");
const auth = process.env.NEO4J_PASSWORD
  ? neo4j.auth.basic(process.env.NEO4J_USER ?? "neo4j", process.env.NEO4J_PASSWORD)
  : undefined;
const driver = neo4j.driver(process.env.NEO4J_URI ?? "bolt://127.0.0.1:7687", auth);
const schema = await new Neo4jGraphQL({ typeDefs, driver }).getSchema();
const server = new ApolloServer({ schema });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT ?? 4000) },
  context: async () => ({}),
});
console.log(`peer (${model}) ready at ${url}`);
