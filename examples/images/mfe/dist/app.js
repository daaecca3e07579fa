console.log("learning mfe");
