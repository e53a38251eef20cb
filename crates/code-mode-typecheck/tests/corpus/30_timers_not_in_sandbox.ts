// expect: 2304@2
await new Promise((resolve) => setTimeout(resolve, 100));
return 1;
