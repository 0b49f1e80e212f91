/* stand-in */ window.jQuery = function () { return 42; };
